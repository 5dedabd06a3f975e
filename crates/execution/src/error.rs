//! The one error type of the state transition.

use alloy_primitives::{Address, B256, U256};
use braid_primitives::{ChainId, ImportKind, MessageId};

/// Why a transaction, system transaction or block was rejected. Every variant leaves the state
/// exactly as it was before the rejected item.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ExecutionError {
    /// The raw transaction exceeds the size limit.
    #[error("transaction is {size} bytes, more than the limit of {max}")]
    TxTooLarge {
        /// Size of the raw transaction.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a valid EIP-2718 transaction (bad RLP, trailing bytes, ...).
    #[error("malformed transaction: {reason}")]
    MalformedTx {
        /// What the decoder objected to.
        reason: String,
    },
    /// A transaction type Braid does not execute (only legacy EIP-155 and EIP-1559 are).
    #[error("unsupported transaction type {tx_type}")]
    UnsupportedTxType {
        /// The EIP-2718 type byte.
        tx_type: u8,
    },
    /// A legacy transaction without EIP-155 replay protection.
    #[error("legacy transaction without an EIP-155 chain id")]
    MissingChainId,
    /// The signature does not recover to a sender.
    #[error("bad signature: {reason}")]
    BadSignature {
        /// What recovery objected to.
        reason: String,
    },
    /// The transaction is signed for another chain.
    #[error("transaction for chain {got}, this is chain {expected}")]
    WrongChainId {
        /// This chain.
        expected: ChainId,
        /// The transaction's chain id.
        got: ChainId,
    },
    /// The nonce was already used.
    #[error("nonce too low for {sender}: expected {expected}, got {got}")]
    NonceTooLow {
        /// The sender.
        sender: Address,
        /// The account's next nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The nonce skips ahead of the account's next nonce.
    #[error("nonce gap for {sender}: expected {expected}, got {got}")]
    NonceGap {
        /// The sender.
        sender: Address,
        /// The account's next nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The gas limit does not cover the intrinsic cost.
    #[error("gas limit {gas_limit} below the intrinsic cost {intrinsic}")]
    IntrinsicGasTooLow {
        /// The transaction's gas limit.
        gas_limit: u64,
        /// The intrinsic cost.
        intrinsic: u64,
    },
    /// The gas limit exceeds what is left in the block.
    #[error("gas limit {gas_limit} exceeds the {available} gas left in the block")]
    GasLimitAboveBlock {
        /// The transaction's gas limit.
        gas_limit: u64,
        /// Gas left in the block.
        available: u64,
    },
    /// Execution needs more gas than the transaction's limit.
    #[error("out of gas: needs {needed}, limit {gas_limit}")]
    OutOfGas {
        /// The transaction's gas limit.
        gas_limit: u64,
        /// Gas the execution needs.
        needed: u64,
    },
    /// The fee cap is below the block's base fee.
    #[error("max fee per gas {max_fee} below the base fee {base_fee}")]
    FeeCapBelowBaseFee {
        /// The transaction's fee cap.
        max_fee: u128,
        /// The block's base fee.
        base_fee: u128,
    },
    /// The priority fee exceeds the fee cap.
    #[error("max priority fee {tip} above the max fee {max_fee}")]
    TipAboveFeeCap {
        /// The priority fee.
        tip: u128,
        /// The fee cap.
        max_fee: u128,
    },
    /// The sender cannot pay value plus the maximum fee.
    #[error("insufficient balance for {sender}: needs {needed}, has {available}")]
    InsufficientBalance {
        /// The sender.
        sender: Address,
        /// Value plus gas limit times fee cap.
        needed: U256,
        /// The sender's balance.
        available: U256,
    },
    /// Contract creation is not part of Braid's native state transition.
    #[error("contract creation is not supported")]
    ContractCreationUnsupported,
    /// Calldata to the messenger does not start with a known selector.
    #[error("unknown messenger function selector {selector:?}")]
    UnknownSelector {
        /// The first four bytes of calldata (fewer if shorter).
        selector: Vec<u8>,
    },
    /// Calldata to the messenger does not ABI-decode.
    #[error("malformed messenger call: {reason}")]
    MalformedCall {
        /// What the decoder objected to.
        reason: String,
    },
    /// Value attached to a messenger function that is not payable.
    #[error("messenger function is not payable")]
    ValueNotAccepted,
    /// A message addressed to this chain itself or to an out-of-range chain id.
    #[error("invalid destination chain {dest}")]
    InvalidDestination {
        /// The requested destination.
        dest: U256,
    },
    /// The message payload is over the limit.
    #[error("message payload is {size} bytes, more than {max}")]
    PayloadTooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The message is not addressed to this chain.
    #[error("message is for chain {got}, this is chain {expected}")]
    WrongDestination {
        /// This chain.
        expected: ChainId,
        /// The message's destination.
        got: ChainId,
    },
    /// The proof refers to a root this chain never imported.
    #[error("{kind:?} root {root} from chain {source_chain} was not imported")]
    RootNotImported {
        /// The import kind named by the proof.
        kind: ImportKind,
        /// The source the root would come from.
        source_chain: ChainId,
        /// The root.
        root: B256,
    },
    /// The proof's fields are inconsistent with the message or the imported root.
    #[error("proof does not match: {reason}")]
    ProofMismatch {
        /// What does not match.
        reason: String,
    },
    /// The proof is against a weaker kind of root than the message asked for.
    #[error("message asked for {requested:?} security, proof is against a {proven:?} root")]
    ModeTooWeak {
        /// The mode in the message.
        requested: ImportKind,
        /// The kind of root the proof uses.
        proven: ImportKind,
    },
    /// A Merkle proof failed to verify.
    #[error("bad message proof: {0}")]
    BadProof(#[from] braid_merkle::MerkleError),
    /// The message already executed on this chain.
    #[error("message {id} already executed")]
    AlreadyExecuted {
        /// The message id.
        id: MessageId,
    },
    /// A chain importing its own root.
    #[error("chain {chain} cannot import its own root")]
    ImportFromSelf {
        /// This chain.
        chain: ChainId,
    },
    /// An import whose kind tag or fields are invalid.
    #[error("invalid import: {reason}")]
    InvalidImport {
        /// What is wrong.
        reason: String,
    },
    /// A deposit out of order, or for another chain.
    #[error("deposit {got} of chain {chain} cannot apply here: expected deposit {expected} of chain {this_chain}")]
    BadDeposit {
        /// The deposit's index.
        got: u64,
        /// The deposit's chain.
        chain: ChainId,
        /// The next expected index.
        expected: u64,
        /// This chain.
        this_chain: ChainId,
    },
    /// The outgoing message tree is full.
    #[error("message tree is full")]
    MessageTreeFull,
    /// A value computation overflowed (only reachable with absurd balances).
    #[error("arithmetic overflow in {what}")]
    Overflow {
        /// The computation.
        what: &'static str,
    },
    /// A block whose header disagrees with its re-execution.
    #[error("block header field {field} is {claimed}, re-execution gives {computed}")]
    HeaderMismatch {
        /// The header field.
        field: &'static str,
        /// The header's value.
        claimed: String,
        /// The re-executed value.
        computed: String,
    },
    /// A transaction inside a block failed (the block is invalid).
    #[error("transaction {index} of block {block} is invalid: {source}")]
    InvalidBlockTx {
        /// Block number.
        block: u64,
        /// Index of the transaction in the block.
        index: usize,
        /// Why the transaction failed.
        source: Box<ExecutionError>,
    },
}
