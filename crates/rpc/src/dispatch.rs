//! The JSON-RPC 2.0 dispatcher: request framing, parameter parsing and the method table.

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, Bytes, TxKind, B256, U128, U256, U64};
use alloy_rpc_types_eth::{FeeHistory, Filter, FilterBlockOption, TransactionRequest};
use braid_execution::RecoveredTx;
use braid_primitives::MESSENGER_ADDRESS;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::convert::{self, StoredBlock};
use crate::{ChainRpcBackend, RpcError, RpcLimits, CLIENT_VERSION, MESSENGER_CODE_MARKER};

type RpcResult = Result<Value, RpcError>;

/// Answers one HTTP body of JSON-RPC 2.0: a single request or a batch.
///
/// Returns the response body; it is empty when nothing is to be sent back (a notification, or a
/// batch of only notifications). Bodies over [`RpcLimits::max_body_bytes`] and batches over
/// [`RpcLimits::max_batch`] (or empty) get one `-32600` error object; unparsable JSON gets
/// `-32700`. Within a batch each request is answered independently, in order. Malformed input
/// never panics and is rejected before any backend call that could change state.
pub fn handle(backend: &dyn ChainRpcBackend, body: &[u8], limits: &RpcLimits) -> Vec<u8> {
    if body.len() > limits.max_body_bytes {
        return encode(&error_response(
            Value::Null,
            RpcError::invalid_request(format!(
                "request body of {} bytes exceeds the limit of {} bytes",
                body.len(),
                limits.max_body_bytes
            )),
        ));
    }
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return encode(&error_response(
                Value::Null,
                RpcError::parse_error(format!("parse error: {e}")),
            ))
        }
    };
    match request {
        Value::Array(items) => {
            if items.is_empty() {
                return encode(&error_response(
                    Value::Null,
                    RpcError::invalid_request("empty batch"),
                ));
            }
            if items.len() > limits.max_batch {
                return encode(&error_response(
                    Value::Null,
                    RpcError::invalid_request(format!(
                        "batch of {} requests exceeds the limit of {}",
                        items.len(),
                        limits.max_batch
                    )),
                ));
            }
            let responses: Vec<Value> = items
                .into_iter()
                .filter_map(|item| handle_one(backend, item, limits))
                .collect();
            if responses.is_empty() {
                Vec::new()
            } else {
                encode(&Value::Array(responses))
            }
        }
        single => handle_one(backend, single, limits)
            .map(|r| encode(&r))
            .unwrap_or_default(),
    }
}

fn encode(v: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail (keys are strings); fall back to a fixed error anyway.
    serde_json::to_vec(v).unwrap_or_else(|_| {
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}"#
            .to_vec()
    })
}

fn error_response(id: Value, error: RpcError) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": error })
}

/// One request object; `None` for a valid notification.
fn handle_one(backend: &dyn ChainRpcBackend, item: Value, limits: &RpcLimits) -> Option<Value> {
    let Value::Object(mut obj) = item else {
        return Some(error_response(
            Value::Null,
            RpcError::invalid_request("request must be an object"),
        ));
    };
    let id = obj.remove("id");
    let id_valid = matches!(
        id,
        None | Some(Value::Null | Value::Number(_) | Value::String(_))
    );
    if !id_valid {
        return Some(error_response(
            Value::Null,
            RpcError::invalid_request("id must be a string, a number or null"),
        ));
    }
    let reply_id = id.clone().unwrap_or(Value::Null);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some(error_response(
            reply_id,
            RpcError::invalid_request("jsonrpc must be \"2.0\""),
        ));
    }
    let Some(method) = obj.get("method").and_then(Value::as_str).map(str::to_owned) else {
        return Some(error_response(
            reply_id,
            RpcError::invalid_request("method must be a string"),
        ));
    };
    let params = obj.remove("params").unwrap_or(Value::Null);
    if !matches!(params, Value::Null | Value::Array(_) | Value::Object(_)) {
        return Some(error_response(
            reply_id,
            RpcError::invalid_request("params must be an array or an object"),
        ));
    }
    let result = dispatch(backend, &method, &params, limits);
    // A request without an id is a notification: processed, never answered.
    id.as_ref()?;
    Some(match result {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": reply_id, "result": result }),
        Err(error) => error_response(reply_id, error),
    })
}

fn dispatch(
    backend: &dyn ChainRpcBackend,
    method: &str,
    params: &Value,
    limits: &RpcLimits,
) -> RpcResult {
    match method {
        "eth_chainId" => {
            Params::new(params, 0, 0)?;
            to_json(U64::from(backend.chain_id()))
        }
        "net_version" => {
            Params::new(params, 0, 0)?;
            to_json(backend.chain_id().to_string())
        }
        "web3_clientVersion" => {
            Params::new(params, 0, 0)?;
            to_json(CLIENT_VERSION)
        }
        "eth_syncing" => {
            Params::new(params, 0, 0)?;
            to_json(false)
        }
        "eth_accounts" => {
            Params::new(params, 0, 0)?;
            to_json(Vec::<Address>::new())
        }
        "eth_blockNumber" => {
            Params::new(params, 0, 0)?;
            to_json(U64::from(backend.head_number()))
        }
        "eth_gasPrice" => {
            Params::new(params, 0, 0)?;
            let price = backend
                .next_base_fee()
                .saturating_add(crate::SUGGESTED_TIP_WEI);
            to_json(U128::from(price))
        }
        "eth_maxPriorityFeePerGas" => {
            Params::new(params, 0, 0)?;
            to_json(U128::from(crate::SUGGESTED_TIP_WEI))
        }
        "eth_getBalance" => {
            let p = Params::new(params, 1, 2)?;
            let address: Address = p.required(0, "address")?;
            latest_state_only(backend, p.optional(1, "block")?)?;
            to_json(backend.balance(address))
        }
        "eth_getTransactionCount" => {
            let p = Params::new(params, 1, 2)?;
            let address: Address = p.required(0, "address")?;
            let block: Option<BlockId> = p.optional(1, "block")?;
            to_json(U64::from(transaction_count(
                backend, address, block, limits,
            )?))
        }
        "eth_getCode" => {
            let p = Params::new(params, 1, 2)?;
            let address: Address = p.required(0, "address")?;
            existing_block(backend, p.optional(1, "block")?)?;
            let code = if address == MESSENGER_ADDRESS {
                Bytes::from_static(MESSENGER_CODE_MARKER)
            } else {
                Bytes::new()
            };
            to_json(code)
        }
        "eth_getStorageAt" => {
            let p = Params::new(params, 2, 3)?;
            let _address: Address = p.required(0, "address")?;
            let _slot: U256 = p.required(1, "storage slot")?;
            existing_block(backend, p.optional(2, "block")?)?;
            to_json(B256::ZERO)
        }
        "eth_feeHistory" => fee_history(backend, params, limits),
        "eth_estimateGas" => {
            let p = Params::new(params, 1, 3)?;
            let request: TransactionRequest = p.required(0, "transaction")?;
            latest_state_only(backend, p.optional(1, "block")?)?;
            no_state_overrides(&p, 2)?;
            let call = CallArgs::from_request(&request)?;
            let gas = backend
                .estimate_gas(call.from, call.to, call.value, call.input)
                .map_err(RpcError::server)?;
            to_json(U64::from(gas))
        }
        "eth_call" => {
            let p = Params::new(params, 1, 3)?;
            let request: TransactionRequest = p.required(0, "transaction")?;
            latest_state_only(backend, p.optional(1, "block")?)?;
            no_state_overrides(&p, 2)?;
            let call = CallArgs::from_request(&request)?;
            let to = call.to.ok_or_else(|| {
                RpcError::server("contract creation is not supported: eth_call needs `to`")
            })?;
            let out = backend
                .call(call.from, to, call.value, call.input)
                .map_err(RpcError::server)?;
            to_json(out)
        }
        "eth_sendRawTransaction" => {
            let p = Params::new(params, 1, 1)?;
            let raw: Bytes = p.required(0, "raw transaction")?;
            // Reject bytes that are not a signed transaction as bad params before the pool.
            RecoveredTx::decode(&raw).map_err(|e| {
                RpcError::invalid_params(format!("failed to decode signed transaction: {e}"))
            })?;
            let hash = backend
                .send_raw_transaction(raw)
                .map_err(RpcError::server)?;
            to_json(hash)
        }
        "eth_getTransactionByHash" => {
            let p = Params::new(params, 1, 1)?;
            let hash: B256 = p.required(0, "transaction hash")?;
            if let Some((stored, index)) = locate_tx(backend, hash)? {
                return to_json(convert::included_tx(&stored, index)?);
            }
            match backend.pending_tx(hash) {
                Some(tx) => to_json(convert::pending_tx(tx)),
                None => Ok(Value::Null),
            }
        }
        "eth_getTransactionReceipt" => {
            let p = Params::new(params, 1, 1)?;
            let hash: B256 = p.required(0, "transaction hash")?;
            match locate_tx(backend, hash)? {
                Some((stored, index)) => to_json(convert::rpc_receipt(&stored, index)?),
                None => Ok(Value::Null),
            }
        }
        "eth_getBlockByNumber" => {
            let p = Params::new(params, 1, 2)?;
            let tag: BlockNumberOrTag = p.required(0, "block number or tag")?;
            let full: bool = p.optional(1, "full transactions flag")?.unwrap_or(false);
            match backend.block_by_number(resolve_tag(backend, tag)) {
                Some(stored) => to_json(convert::rpc_block(&stored, full)?),
                None => Ok(Value::Null),
            }
        }
        "eth_getBlockByHash" => {
            let p = Params::new(params, 1, 2)?;
            let hash: B256 = p.required(0, "block hash")?;
            let full: bool = p.optional(1, "full transactions flag")?.unwrap_or(false);
            match by_hash(backend, hash) {
                Some(stored) => to_json(convert::rpc_block(&stored, full)?),
                None => Ok(Value::Null),
            }
        }
        "eth_getBlockTransactionCountByNumber" => {
            let p = Params::new(params, 1, 1)?;
            let tag: BlockNumberOrTag = p.required(0, "block number or tag")?;
            match backend.block_by_number(resolve_tag(backend, tag)) {
                Some((block, _)) => to_json(U64::from(block.transactions.len() as u64)),
                None => Ok(Value::Null),
            }
        }
        "eth_getBlockTransactionCountByHash" => {
            let p = Params::new(params, 1, 1)?;
            let hash: B256 = p.required(0, "block hash")?;
            match by_hash(backend, hash) {
                Some((block, _)) => to_json(U64::from(block.transactions.len() as u64)),
                None => Ok(Value::Null),
            }
        }
        "eth_getLogs" => get_logs(backend, params, limits),
        other => match backend.extension(other, params) {
            Some(result) => result,
            None => Err(RpcError::method_not_found(other)),
        },
    }
}

fn to_json<T: Serialize>(v: T) -> RpcResult {
    serde_json::to_value(v).map_err(|e| RpcError::internal(format!("cannot serialize result: {e}")))
}

/// Positional parameters with an arity check.
struct Params<'a> {
    items: &'a [Value],
}

impl<'a> Params<'a> {
    fn new(params: &'a Value, min: usize, max: usize) -> Result<Self, RpcError> {
        let items: &[Value] = match params {
            Value::Null => &[],
            Value::Array(items) => items,
            _ => {
                return Err(RpcError::invalid_params(
                    "expected positional parameters (an array)",
                ))
            }
        };
        if items.len() < min || items.len() > max {
            let expected = if min == max {
                format!("{min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(RpcError::invalid_params(format!(
                "expected {expected} parameters, got {}",
                items.len()
            )));
        }
        Ok(Self { items })
    }

    fn optional<T: DeserializeOwned>(&self, i: usize, what: &str) -> Result<Option<T>, RpcError> {
        match self.items.get(i) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => T::deserialize(v)
                .map(Some)
                .map_err(|e| RpcError::invalid_params(format!("invalid {what}: {e}"))),
        }
    }

    fn required<T: DeserializeOwned>(&self, i: usize, what: &str) -> Result<T, RpcError> {
        self.optional(i, what)?
            .ok_or_else(|| RpcError::invalid_params(format!("missing {what}")))
    }
}

fn no_state_overrides(p: &Params<'_>, i: usize) -> Result<(), RpcError> {
    match p.items.get(i) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(o)) if o.is_empty() => Ok(()),
        Some(_) => Err(RpcError::invalid_params(
            "state overrides are not supported",
        )),
    }
}

/// `latest`, `pending`, `safe` and `finalized` all mean the head: blocks are final once
/// produced from the RPC's point of view (Braid's settlement-level finality is not exposed
/// here); `pending` has no separate pending block.
fn resolve_tag(backend: &dyn ChainRpcBackend, tag: BlockNumberOrTag) -> u64 {
    match tag {
        BlockNumberOrTag::Earliest => 0,
        BlockNumberOrTag::Number(n) => n,
        BlockNumberOrTag::Latest
        | BlockNumberOrTag::Pending
        | BlockNumberOrTag::Safe
        | BlockNumberOrTag::Finalized => backend.head_number(),
    }
}

/// Resolves a block id to an existing block number (`-32000` if there is no such block).
fn resolve_block_id(backend: &dyn ChainRpcBackend, id: BlockId) -> Result<u64, RpcError> {
    match id {
        BlockId::Number(tag) => {
            let n = resolve_tag(backend, tag);
            if n > backend.head_number() {
                return Err(RpcError::server(format!("header for block {n} not found")));
            }
            Ok(n)
        }
        BlockId::Hash(h) => backend
            .block_number_by_hash(h.block_hash)
            .ok_or_else(|| RpcError::server(format!("header for hash {} not found", h.block_hash))),
    }
}

fn existing_block(backend: &dyn ChainRpcBackend, id: Option<BlockId>) -> Result<(), RpcError> {
    match id {
        None => Ok(()),
        Some(id) => resolve_block_id(backend, id).map(|_| ()),
    }
}

/// Only the latest state is kept: accept ids that resolve to the head.
fn latest_state_only(backend: &dyn ChainRpcBackend, id: Option<BlockId>) -> Result<(), RpcError> {
    let Some(id) = id else { return Ok(()) };
    if matches!(id, BlockId::Number(BlockNumberOrTag::Pending)) {
        return Ok(());
    }
    let n = resolve_block_id(backend, id)?;
    let head = backend.head_number();
    if n != head {
        return Err(RpcError::server(format!(
            "historical state not available: block {n} requested, only the latest block {head} is kept"
        )));
    }
    Ok(())
}

/// Nonce at a block: the latest nonce minus the sender's transactions in the blocks after it.
fn transaction_count(
    backend: &dyn ChainRpcBackend,
    address: Address,
    block: Option<BlockId>,
    limits: &RpcLimits,
) -> Result<u64, RpcError> {
    let n = match block {
        None => return Ok(backend.nonce(address, false)),
        Some(BlockId::Number(BlockNumberOrTag::Pending)) => return Ok(backend.nonce(address, true)),
        Some(BlockId::Number(BlockNumberOrTag::Earliest)) => return Ok(0),
        Some(id) => resolve_block_id(backend, id)?,
    };
    // The head may advance while we read; retry until head and nonce are read consistently.
    for _ in 0..3 {
        let head = backend.head_number();
        if n > head {
            return Err(RpcError::server(format!("header for block {n} not found")));
        }
        if head - n > limits.max_block_range {
            return Err(RpcError::limit_exceeded(format!(
                "nonce reconstruction over {} blocks exceeds the limit of {}",
                head - n,
                limits.max_block_range
            )));
        }
        let latest = backend.nonce(address, false);
        let mut later = 0u64;
        for b in n + 1..=head {
            if let Some((_, receipts)) = backend.block_by_number(b) {
                later += receipts.iter().filter(|r| r.from == address).count() as u64;
            }
        }
        if backend.head_number() == head {
            return Ok(latest.saturating_sub(later));
        }
    }
    Err(RpcError::server("chain advanced during the query; retry"))
}

fn by_hash(backend: &dyn ChainRpcBackend, hash: B256) -> Option<StoredBlock> {
    let n = backend.block_number_by_hash(hash)?;
    backend
        .block_by_number(n)
        .filter(|(block, _)| block.header.hash() == hash)
}

fn locate_tx(
    backend: &dyn ChainRpcBackend,
    hash: B256,
) -> Result<Option<(StoredBlock, usize)>, RpcError> {
    let Some((number, index)) = backend.tx_location(hash) else {
        return Ok(None);
    };
    let Some(stored) = backend.block_by_number(number) else {
        return Ok(None); // reverted between the two reads
    };
    let index = index as usize;
    match stored.1.get(index) {
        Some(r) if r.tx_hash == hash => Ok(Some((stored, index))),
        _ => Ok(None),
    }
}

/// The call fields Braid uses, from an `eth_call`/`eth_estimateGas` request object.
struct CallArgs {
    from: Address,
    to: Option<Address>,
    value: U256,
    input: Bytes,
}

impl CallArgs {
    fn from_request(r: &TransactionRequest) -> Result<Self, RpcError> {
        let input = r
            .input
            .unique_input()
            .map_err(|e| RpcError::invalid_params(format!("invalid transaction: {e}")))?
            .cloned()
            .unwrap_or_default();
        let to = match r.to {
            Some(TxKind::Call(a)) => Some(a),
            Some(TxKind::Create) | None => None,
        };
        Ok(Self {
            from: r.from.unwrap_or(Address::ZERO),
            to,
            value: r.value.unwrap_or(U256::ZERO),
            input,
        })
    }
}

/// A quantity given as a hex string or a JSON number.
fn quantity(v: &Value, what: &str) -> Result<u64, RpcError> {
    let bad = || RpcError::invalid_params(format!("invalid {what}: expected a hex quantity"));
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(bad),
        Value::String(s) => {
            let digits = s.strip_prefix("0x").ok_or_else(bad)?;
            if digits.is_empty() || digits.len() > 16 {
                return Err(bad());
            }
            u64::from_str_radix(digits, 16).map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

/// `eth_feeHistory(blockCount, newestBlock, rewardPercentiles?)` from stored headers.
/// `baseFeePerGas` has one more entry than blocks: the next block's base fee (from the
/// backend when `newestBlock` is the head). `reward` holds, per block, the tips paid at the
/// requested percentiles (gas-weighted, zeros for empty blocks). Blob fields are zeros.
fn fee_history(backend: &dyn ChainRpcBackend, params: &Value, limits: &RpcLimits) -> RpcResult {
    let p = Params::new(params, 2, 3)?;
    let count_value = p.items.first().unwrap_or(&Value::Null);
    let count = quantity(count_value, "block count")?.min(limits.max_fee_history_blocks);
    let newest_tag: BlockNumberOrTag = p.required(1, "newest block")?;
    let percentiles: Option<Vec<f64>> = p.optional(2, "reward percentiles")?;
    if let Some(ps) = &percentiles {
        if ps.len() > 100 {
            return Err(RpcError::invalid_params("at most 100 reward percentiles"));
        }
        let mut prev = 0.0f64;
        for x in ps {
            if !(0.0..=100.0).contains(x) || *x < prev {
                return Err(RpcError::invalid_params(
                    "reward percentiles must be non-decreasing values in [0, 100]",
                ));
            }
            prev = *x;
        }
    }
    let head = backend.head_number();
    let newest = resolve_tag(backend, newest_tag);
    if newest > head {
        return Err(RpcError::server(format!(
            "request beyond head block: requested {newest}, head {head}"
        )));
    }
    if count == 0 {
        return to_json(FeeHistory::default());
    }
    let oldest = newest.saturating_sub(count - 1);
    let mut history = FeeHistory {
        oldest_block: oldest,
        ..FeeHistory::default()
    };
    let mut rewards = Vec::new();
    for n in oldest..=newest {
        let stored = backend
            .block_by_number(n)
            .ok_or_else(|| RpcError::server(format!("header for block {n} not found")))?;
        let h = &stored.0.header;
        history.base_fee_per_gas.push(h.baseFee);
        history.gas_used_ratio.push(if h.gasLimit == 0 {
            0.0
        } else {
            h.gasUsed as f64 / h.gasLimit as f64
        });
        history.base_fee_per_blob_gas.push(0);
        history.blob_gas_used_ratio.push(0.0);
        if let Some(ps) = &percentiles {
            rewards.push(convert::reward_percentiles(&stored, ps));
        }
    }
    let next_base_fee = if newest >= backend.head_number() {
        backend.next_base_fee()
    } else {
        backend
            .block_by_number(newest + 1)
            .map(|(b, _)| b.header.baseFee)
            .unwrap_or_else(|| backend.next_base_fee())
    };
    history.base_fee_per_gas.push(next_base_fee);
    history.base_fee_per_blob_gas.push(0);
    if percentiles.is_some() {
        history.reward = Some(rewards);
    }
    to_json(history)
}

/// `eth_getLogs`: a block range (inclusive, `fromBlock`/`toBlock` default to the head, bounded
/// by [`RpcLimits::max_block_range`]; a `toBlock` beyond the head is clamped to it) or one
/// `blockHash`; `address` one or many (OR); `topics` per position `null` (any), a hash, or an
/// array of hashes (OR), positions AND-ed.
fn get_logs(backend: &dyn ChainRpcBackend, params: &Value, limits: &RpcLimits) -> RpcResult {
    let p = Params::new(params, 1, 1)?;
    let filter: Filter = p.required(0, "filter")?;
    let blocks: Vec<StoredBlock> = match filter.block_option {
        FilterBlockOption::AtBlockHash(hash) => {
            let stored = by_hash(backend, hash)
                .ok_or_else(|| RpcError::server(format!("unknown block {hash}")))?;
            vec![stored]
        }
        FilterBlockOption::Range {
            from_block,
            to_block,
        } => {
            let head = backend.head_number();
            let from = from_block.map_or(head, |t| resolve_tag(backend, t));
            let to = to_block.map_or(head, |t| resolve_tag(backend, t)).min(head);
            if from > head {
                return Ok(json!([]));
            }
            if from > to {
                return Err(RpcError::invalid_params(format!(
                    "invalid block range: fromBlock {from} is after toBlock {to}"
                )));
            }
            if to - from >= limits.max_block_range {
                return Err(RpcError::limit_exceeded(format!(
                    "query covers {} blocks, more than the limit of {}",
                    to - from + 1,
                    limits.max_block_range
                )));
            }
            (from..=to)
                .filter_map(|n| backend.block_by_number(n))
                .collect()
        }
    };
    let mut out = Vec::new();
    for stored in &blocks {
        for log in convert::block_logs(stored) {
            if filter.matches(&log.inner) {
                if out.len() >= limits.max_logs {
                    return Err(RpcError::limit_exceeded(format!(
                        "query returns more than {} logs",
                        limits.max_logs
                    )));
                }
                out.push(log);
            }
        }
    }
    to_json(out)
}
