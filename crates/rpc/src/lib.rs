//! Braid's Ethereum JSON-RPC server: the `eth_`/`net_`/`web3_` subset that wallets, `cast` and
//! alloy need, served over HTTP from any chain node that implements [`ChainRpcBackend`].
//!
//! The crate has two layers:
//! - [`handle`] is a pure JSON-RPC 2.0 dispatcher: bytes in, bytes out. It parses single and
//!   batch requests, enforces [`RpcLimits`], validates every parameter before it touches the
//!   backend, and renders results with the `alloy-rpc-types-eth` JSON shapes (blocks,
//!   transactions, receipts, logs, fee history) so real Ethereum clients parse them. Bad input
//!   never panics and never reaches a state-changing backend call.
//! - [`serve`] / [`serve_with_shutdown`] run the dispatcher behind an axum HTTP server
//!   (`POST /`), with a body-size bound, a token-bucket request-rate bound, a permissive CORS
//!   header and graceful shutdown.
//!
//! # Mapping Braid onto Ethereum
//! Braid block headers are not Ethereum headers; the JSON block fills the Ethereum fields from
//! them: `hash` = [`BlockHeader::hash`](braid_primitives::BlockHeader::hash) (so it is *not*
//! `keccak256(rlp(header))`), `parentHash`, `number`, `timestamp` = `timestampMs / 1000`,
//! `stateRoot`, `transactionsRoot` = Braid's `txRoot` (`keccak256(abi.encode(bytes32[]))`, not a
//! trie root), `receiptsRoot` and `logsBloom` computed the Ethereum way from the receipts,
//! `miner` = sequencer, `gasLimit`, `gasUsed`, `baseFeePerGas`, `sha3Uncles` = the empty-ommers
//! hash, and zero `difficulty`, `mixHash`, `nonce`, empty `extraData`, no withdrawals. `size` is
//! an approximation (header words plus raw transaction bytes). Imports and deposits (Braid's
//! system transactions) are not listed as transactions.
//!
//! Only the latest state is available: `eth_getBalance`, `eth_call` and `eth_estimateGas` at an
//! older block answer `-32000` ("historical state not available"); `eth_getTransactionCount`
//! at an older block is reconstructed from the receipts of the blocks after it (bounded by
//! [`RpcLimits::max_block_range`]).
//!
//! # Error codes
//! `-32700` parse error, `-32600` invalid request (also: body or batch over the limit), `-32601`
//! method not found, `-32602` invalid params (bad hex, wrong arity, unknown block tag, bytes
//! that are not a signed transaction), `-32000` execution, pool and state errors (the
//! backend's message), `-32005` limit exceeded (log range, result size, request rate), `-32603`
//! internal error.

mod convert;
mod dispatch;
mod server;

#[cfg(test)]
mod tests;

use alloy_primitives::{Address, Bytes, B256, U256};
use braid_execution::{RecoveredTx, TxReceipt};
use braid_primitives::Block;
use serde::{Deserialize, Serialize};

pub use dispatch::handle;
pub use server::{serve, serve_with_shutdown, RpcServer};

/// Value of `web3_clientVersion`: `braid/<crate version>`.
pub const CLIENT_VERSION: &str = concat!("braid/", env!("CARGO_PKG_VERSION"));

/// The bytecode `eth_getCode` reports for the messenger system contract (`INVALID`, 0xfe): a
/// non-empty marker so tools treat the address as a contract. Braid executes the messenger
/// natively; there is no EVM bytecode.
pub const MESSENGER_CODE_MARKER: &[u8] = &[0xfe];

/// The priority fee (1 gwei) suggested by `eth_maxPriorityFeePerGas` and added to the next base
/// fee by `eth_gasPrice`.
pub const SUGGESTED_TIP_WEI: u128 = 1_000_000_000;

/// What a chain node provides to the RPC: read access to blocks, receipts, the latest state and
/// the pool, and transaction submission.
///
/// Implementations must be cheap to call concurrently (the server calls them from blocking
/// worker threads) and must keep the methods consistent with each other: a hash returned by
/// [`ChainRpcBackend::tx_location`] lies in a block returned by
/// [`ChainRpcBackend::block_by_number`], whose receipts are aligned with its transactions.
pub trait ChainRpcBackend: Send + Sync {
    /// The chain's EIP-155 chain id.
    fn chain_id(&self) -> u64;
    /// Number of the head (latest) block.
    fn head_number(&self) -> u64;
    /// A block with its receipts (one per transaction, in order), `None` beyond the head.
    fn block_by_number(&self, n: u64) -> Option<(Block, Vec<TxReceipt>)>;
    /// The number of the block with this hash.
    fn block_number_by_hash(&self, hash: B256) -> Option<u64>;
    /// `(block number, index in the block)` of an included transaction.
    fn tx_location(&self, hash: B256) -> Option<(u64, u32)>;
    /// A transaction waiting in the pool.
    fn pending_tx(&self, hash: B256) -> Option<RecoveredTx>;
    /// Balance in the latest state.
    fn balance(&self, a: Address) -> U256;
    /// Next nonce in the latest state; with `pending`, plus the sender's consecutive pooled
    /// transactions.
    fn nonce(&self, a: Address, pending: bool) -> u64;
    /// Base fee of the next block.
    fn next_base_fee(&self) -> u128;
    /// Submits a raw EIP-2718 transaction to the pool; the error is the pool's typed error
    /// rendered as text (reported to the client as `-32000`).
    fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, String>;
    /// Gas a call would use on the latest state (`to = None`: contract creation).
    fn estimate_gas(
        &self,
        from: Address,
        to: Option<Address>,
        value: U256,
        input: Bytes,
    ) -> Result<u64, String>;
    /// Result of a read-only call on the latest state.
    fn call(&self, from: Address, to: Address, value: U256, input: Bytes) -> Result<Bytes, String>;
    /// Methods outside the standard set (the `braid_` namespace). `None`: not handled here, the
    /// dispatcher answers "method not found". `params` is the request's `params` member
    /// (`null` when absent).
    fn extension(
        &self,
        method: &str,
        params: &serde_json::Value,
    ) -> Option<Result<serde_json::Value, RpcError>> {
        let _ = (method, params);
        None
    }
}

/// A JSON-RPC 2.0 error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("JSON-RPC error {code}: {message}")]
pub struct RpcError {
    /// The error code.
    pub code: i64,
    /// A short description.
    pub message: String,
    /// Additional data, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl RpcError {
    /// Invalid JSON (`-32700`).
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a valid request object, or over a size limit (`-32600`).
    pub const INVALID_REQUEST: i64 = -32600;
    /// Unknown method (`-32601`).
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Bad parameters (`-32602`).
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal error (`-32603`).
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Execution, pool or state error (`-32000`, Ethereum's generic server error).
    pub const SERVER_ERROR: i64 = -32000;
    /// A limit was exceeded (`-32005`, EIP-1474).
    pub const LIMIT_EXCEEDED: i64 = -32005;

    /// An error with this code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
    /// `-32700`.
    pub fn parse_error(message: impl Into<String>) -> Self {
        Self::new(Self::PARSE_ERROR, message)
    }
    /// `-32600`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(Self::INVALID_REQUEST, message)
    }
    /// `-32601` for `method`.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            Self::METHOD_NOT_FOUND,
            format!("the method {method} does not exist/is not available"),
        )
    }
    /// `-32602`.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(Self::INVALID_PARAMS, message)
    }
    /// `-32603`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Self::INTERNAL_ERROR, message)
    }
    /// `-32000`.
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(Self::SERVER_ERROR, message)
    }
    /// `-32005`.
    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::new(Self::LIMIT_EXCEEDED, message)
    }
}

/// Bounds on what one request (or one server) may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcLimits {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Most requests in one batch.
    pub max_batch: usize,
    /// Most blocks one `eth_getLogs` may scan, and furthest back `eth_getTransactionCount` may
    /// reconstruct a historical nonce.
    pub max_block_range: u64,
    /// Most logs one `eth_getLogs` may return.
    pub max_logs: usize,
    /// Most blocks one `eth_feeHistory` may cover (larger counts are clamped, as geth does).
    pub max_fee_history_blocks: u64,
    /// Server only: sustained HTTP requests per second (token-bucket refill rate; a batch counts
    /// as one request). `0` disables the rate bound.
    pub requests_per_second: u32,
    /// Server only: token-bucket capacity (requests allowed in a burst).
    pub burst: u32,
}

impl Default for RpcLimits {
    /// 5 MiB bodies, 100-request batches, 10,000-block log ranges, 10,000 logs, 1,024-block fee
    /// history, 1,000 requests/s with bursts of 2,000.
    fn default() -> Self {
        Self {
            max_body_bytes: 5 * 1024 * 1024,
            max_batch: 100,
            max_block_range: 10_000,
            max_logs: 10_000,
            max_fee_history_blocks: 1_024,
            requests_per_second: 1_000,
            burst: 2_000,
        }
    }
}
