//! Braid's shared vocabulary: chain ids, heights, messages, block and batch headers.
//!
//! Every committed structure is a Solidity-style struct (declared with [`alloy_sol_types::sol!`])
//! and hashed as `keccak256(abi.encode(value))`, so a Solidity contract holding the same struct
//! definition computes exactly the same hashes. The hashing helpers live on the types
//! ([`Message::leaf_hash`], [`BlockHeader::hash`], [`BatchHeader::hash`]).

// `sol!` generates constructors with one argument per struct field.
#![allow(clippy::too_many_arguments)]

use alloy_sol_types::{sol, SolValue};

pub use alloy_primitives::{address, b256, keccak256, Address, Bytes, B256, U256};

pub mod aggregation;

/// Identifier of a rollup chain (an EIP-155 chain id).
pub type ChainId = u64;
/// Height of a block on one chain; the genesis block has height 0.
pub type BlockNumber = u64;
/// Sequence number of a batch on one chain; the first sealed batch is batch 1.
pub type BatchNumber = u64;
/// Index of a message in its source chain's message tree.
pub type MessageNonce = u64;
/// Hash of a block header: `keccak256(abi.encode(header))`.
pub type BlockHash = B256;
/// Root of a chain's message tree after some block (seed 000's `LocalRoot`).
pub type LocalRoot = B256;
/// Root of a chain's message tree after the last block of a batch (seed 000's `ChainBatchRoot`).
pub type ChainBatchRoot = B256;

/// Errors from decoding Braid's committed structures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrimitivesError {
    /// ABI bytes that do not decode as the expected struct.
    #[error("malformed ABI encoding of {what}: {reason}")]
    MalformedAbi {
        /// The struct that was expected.
        what: &'static str,
        /// What the decoder objected to.
        reason: String,
    },
    /// A numeric interop-mode tag outside the known set.
    #[error("unknown import kind {0}")]
    UnknownImportKind(u8),
}

sol! {
    /// A cross-chain message. `nonce` is the message's index in its source chain's message
    /// tree, so `(sourceChain, nonce)` identifies it uniquely. `mode` is the [`ImportKind`] the
    /// sender asked for: the destination executes it only against a root at least that strong.
    #[derive(Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    struct Message {
        uint64 sourceChain;
        uint64 nonce;
        address sender;
        uint64 destChain;
        address recipient;
        uint256 value;
        uint8 mode;
        bytes payload;
    }

    /// A root that a destination chain imported from a source chain, recorded in the block that
    /// imported it. `kind` is an [`ImportKind`] tag; `sourceHeight` is the source block (for
    /// `precommit`), the source batch (for `commit`), or the SL block (for `proof`) the root
    /// belongs to; `messageCount` is the size of the source tree at that root. An `aggregated`
    /// import is a node hash of the aggregation tree: `sourceChain` is 0 (the tree is the SL's),
    /// `sourceHeight` the checkpoint and `messageCount` the node's level (its index is implied:
    /// the importing chain's ancestor at that level).
    #[derive(Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    struct ImportedRoot {
        uint8 kind;
        uint64 sourceChain;
        uint64 sourceHeight;
        bytes32 root;
        uint64 messageCount;
    }

    /// A chain's block header. The block hash is `keccak256(abi.encode(header))`.
    #[derive(Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    struct BlockHeader {
        uint64 chainId;
        uint64 number;
        bytes32 parentHash;
        uint64 timestampMs;
        address sequencer;
        bytes32 txRoot;
        bytes32 stateRoot;
        bytes32 localRoot;
        uint64 messageCount;
        bytes32 importsHash;
        bytes32 depositsHash;
        uint64 depositCount;
        uint64 gasUsed;
        uint64 gasLimit;
        uint128 baseFee;
    }

    /// Value deposited on the settlement layer for a chain: a forced transaction the chain's
    /// sequencer must include (in `index` order) and that credits `recipient` with `amount`.
    #[derive(Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    struct Deposit {
        uint64 index;
        uint64 chainId;
        address sender;
        address recipient;
        uint256 amount;
        uint64 queuedAtMs;
    }

    /// Proof that a message is in a root the destination imported. For `precommit` and `commit`
    /// imports `root` is the source's message-tree root and (`leafIndex`, `treeSize`,
    /// `siblings`) an inclusion proof against it; the `batchNumber`/`chainBatchRoot`/`outer*`
    /// fields must be zero/empty. For `proof` imports `root` is an SL `MessageRoot`: the inner
    /// proof is against `chainBatchRoot`, and (`outerIndex`, `outerSize`, `outerSiblings`) prove
    /// the batch leaf [`message_root_leaf`] against `root`. For `aggregated` imports `root` is
    /// an aggregation-tree node hash at checkpoint `sourceHeight`; the inner proof is against the
    /// `localRoot` of the source's block at that checkpoint, and `outerSiblings` hold that
    /// block's header (its 15 ABI words) followed by the path from the source's leaf up to the
    /// node, two words per level (see [`aggregation::AggregatedPath`]); `outerIndex` is the
    /// source's position in the tree and `outerSize` the number of chains in it.
    #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct MessageProof {
        uint8 kind;
        uint64 sourceHeight;
        bytes32 root;
        uint64 leafIndex;
        uint64 treeSize;
        bytes32[] siblings;
        uint64 batchNumber;
        bytes32 chainBatchRoot;
        uint64 outerIndex;
        uint64 outerSize;
        bytes32[] outerSiblings;
    }

    /// The messenger system contract's ABI (deployed at [`MESSENGER_ADDRESS`] on every chain).
    #[derive(Debug, PartialEq, Eq)]
    interface IMessenger {
        /// Emitted when a message leaves this chain; `leaf` is its message-tree leaf.
        event MessageSent(uint64 indexed destChain, uint64 indexed nonce, address indexed sender, address recipient, uint256 value, uint8 mode, bytes payload, bytes32 leaf);
        /// Emitted when a message from another chain is executed here.
        event MessageExecuted(uint64 indexed sourceChain, uint64 indexed nonce, address indexed recipient, uint256 value, bytes32 leaf);
        /// Emitted by the system transaction that imports a root.
        event RootImported(uint8 indexed kind, uint64 indexed sourceChain, uint64 sourceHeight, bytes32 root, uint64 messageCount);
        /// Sends `payload` and the attached value to `recipient` on `destChain`, to be executed
        /// after settlement (`proof` mode).
        function sendMessage(uint256 destChain, address recipient, bytes payload) external payable returns (uint64 nonce);
        /// As `sendMessage`, executed as early as `mode` allows (0 precommit, 1 commit, 2 proof).
        function sendMessageWithMode(uint256 destChain, address recipient, bytes payload, uint8 mode) external payable returns (uint64 nonce);
        /// Executes a message from another chain, proven against an imported root.
        function executeMessage(Message message, MessageProof proof) external;
        /// Whether a message id has executed on this chain.
        function isExecuted(uint64 sourceChain, uint64 nonce) external view returns (bool);
        /// The current root and size of this chain's outgoing message tree.
        function localRoot() external view returns (bytes32 root, uint64 messageCount);
    }

    /// The record of a sealed batch (consecutive blocks) as committed to the settlement layer.
    #[derive(Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    struct BatchHeader {
        uint64 chainId;
        uint64 number;
        uint64 firstBlock;
        uint64 lastBlock;
        bytes32 lastBlockHash;
        bytes32 stateRoot;
        bytes32 chainBatchRoot;
        uint64 messageCount;
        bytes32 importsHash;
        bytes32 daCommitment;
    }
}

/// Address of the messenger system contract on every Braid chain.
pub const MESSENGER_ADDRESS: Address = address!("00000000000000000000000000000000000b1a1d");

/// Chain id under which settlement-layer roots (`proof` mode) are imported.
pub const SETTLEMENT_LAYER_CHAIN_ID: ChainId = 0;

/// Leaf of the settlement layer's global `MessageRoot` tree for one executed batch:
/// `keccak256(abi.encode(uint64 chainId, uint64 batchNumber, bytes32 chainBatchRoot, uint64 messageCount))`.
pub fn message_root_leaf(
    chain_id: ChainId,
    batch_number: BatchNumber,
    chain_batch_root: ChainBatchRoot,
    message_count: u64,
) -> B256 {
    keccak256((chain_id, batch_number, chain_batch_root, message_count).abi_encode())
}

/// A block as gossiped and stored: the header, the roots it imported (system transactions,
/// applied before the user transactions) and the raw EIP-2718 user transactions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Block {
    /// The header; its hash is the block hash.
    pub header: BlockHeader,
    /// Roots imported by this block, in order; `header.importsHash` commits to them.
    pub imports: Vec<ImportedRoot>,
    /// Deposits from the SL applied by this block (after the imports, before the user
    /// transactions); `header.depositsHash` commits to them.
    pub deposits: Vec<Deposit>,
    /// Raw signed transactions (EIP-2718 encoding); `header.txRoot` commits to their hashes.
    pub transactions: Vec<Bytes>,
}

/// DA commitment of a batch: `keccak256(abi.encode(bytes32[] blockHashes))`. The block hashes
/// commit to every transaction (tx root) and import (imports hash) of the batch's blocks.
pub fn da_commitment(blocks: &[Block]) -> B256 {
    let hashes: Vec<B256> = blocks.iter().map(|b| b.header.hash()).collect();
    keccak256(hashes.abi_encode())
}

/// The interop mode of an imported root (see `SYSTEM.md`, the mode table). The tag (the
/// discriminant) is what goes on the wire; [`ImportKind::rank`] orders the modes by strength.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum ImportKind {
    /// A `LocalRoot` of the source after any block, before the batch is committed.
    Precommit = 0,
    /// A `ChainBatchRoot` of a batch committed on the settlement layer.
    Commit = 1,
    /// A historical global `MessageRoot` of the settlement layer.
    Proof = 2,
    /// A `LocalRoot` of a source block that validators certified with a quorum certificate.
    Qc = 3,
    /// A `ChainBatchRoot` of a batch whose end state is final on the settlement layer: an
    /// optimistic proposal for it outlived its challenge window (or a proof verified it).
    Optimistic = 4,
    /// A node hash of the shared aggregation tree (seed 001) at a checkpoint: a validity-proven
    /// hash over the block hashes of every chain below the node, settled inside the tree when
    /// the node is recomputed at a later checkpoint and on the SL with the tree's root.
    Aggregated = 5,
}

impl ImportKind {
    /// All kinds, in tag order.
    pub const ALL: [ImportKind; 6] = [
        ImportKind::Precommit,
        ImportKind::Commit,
        ImportKind::Proof,
        ImportKind::Qc,
        ImportKind::Optimistic,
        ImportKind::Aggregated,
    ];

    /// Strength: `precommit` (trusts the source sequencer) < `qc` (trusts more than 2/3 of the
    /// validators' stake, which re-executed the block) < `commit` (the batch is on the SL;
    /// trusts the source operator not to revert it) < `optimistic` (the batch's end state is
    /// final: trusts one honest challenger during the window) < `aggregated` (the source's
    /// blocks are proven inside the aggregation tree; the SL settles them with the tree's next
    /// roots) < `proof` (the batch executed on the SL: nothing more to trust).
    pub fn rank(self) -> u8 {
        match self {
            ImportKind::Precommit => 0,
            ImportKind::Qc => 1,
            ImportKind::Commit => 2,
            ImportKind::Optimistic => 3,
            ImportKind::Aggregated => 4,
            ImportKind::Proof => 5,
        }
    }

    /// Whether a root of this kind is at least as strong as `requested` (by [`ImportKind::rank`]).
    pub fn satisfies(self, requested: ImportKind) -> bool {
        self.rank() >= requested.rank()
    }

    /// Whether roots of this kind are a source block's `LocalRoot` (settled like pre-commits:
    /// by an extension proof into the source's executed batch).
    pub fn is_block_root(self) -> bool {
        matches!(self, ImportKind::Precommit | ImportKind::Qc)
    }

    /// Human-readable mode name, as used in configuration and reports.
    pub fn name(self) -> &'static str {
        match self {
            ImportKind::Precommit => "precommit",
            ImportKind::Commit => "commit",
            ImportKind::Proof => "proof",
            ImportKind::Qc => "qc",
            ImportKind::Optimistic => "optimistic",
            ImportKind::Aggregated => "aggregated",
        }
    }
}

impl TryFrom<u8> for ImportKind {
    type Error = PrimitivesError;
    fn try_from(tag: u8) -> Result<Self, Self::Error> {
        match tag {
            0 => Ok(ImportKind::Precommit),
            1 => Ok(ImportKind::Commit),
            2 => Ok(ImportKind::Proof),
            3 => Ok(ImportKind::Qc),
            4 => Ok(ImportKind::Optimistic),
            5 => Ok(ImportKind::Aggregated),
            other => Err(PrimitivesError::UnknownImportKind(other)),
        }
    }
}

/// The globally unique id of a message: its source chain and its index there.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct MessageId {
    /// The chain the message was sent from.
    pub source_chain: ChainId,
    /// The message's index in the source chain's message tree.
    pub nonce: MessageNonce,
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.source_chain, self.nonce)
    }
}

impl Message {
    /// The message's leaf in the source message tree: `keccak256(abi.encode(message))`.
    pub fn leaf_hash(&self) -> B256 {
        keccak256(self.abi_encode())
    }

    /// The message's unique id.
    pub fn id(&self) -> MessageId {
        MessageId {
            source_chain: self.sourceChain,
            nonce: self.nonce,
        }
    }

    /// Decodes `abi.encode(message)` bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, PrimitivesError> {
        decode_canonical(bytes, "Message")
    }
}

/// Decodes `abi.encode(value)` and insists the bytes are the canonical encoding, so one value
/// has exactly one accepted byte string (no trailing bytes, no dirty padding).
fn decode_canonical<T>(bytes: &[u8], what: &'static str) -> Result<T, PrimitivesError>
where
    T: SolValue + From<<T::SolType as alloy_sol_types::SolType>::RustType>,
{
    let value = T::abi_decode(bytes).map_err(|e| PrimitivesError::MalformedAbi {
        what,
        reason: e.to_string(),
    })?;
    if value.abi_encode() != bytes {
        return Err(PrimitivesError::MalformedAbi {
            what,
            reason: "non-canonical encoding".into(),
        });
    }
    Ok(value)
}

impl ImportedRoot {
    /// The import's interop mode.
    pub fn import_kind(&self) -> Result<ImportKind, PrimitivesError> {
        ImportKind::try_from(self.kind)
    }

    /// Whether this import became void when `source` reverted its batches from `from_batch` (its
    /// blocks from `first_block`): a block root (`precommit`, `qc`) of a void block or a `commit`
    /// root of a void batch. A `proof` root never does: MessageRoots only hold executed batches,
    /// which are final; nor does an `aggregated` root: the tree proved the blocks under it,
    /// imports included, before anyone could import its hash.
    pub fn voided_by(&self, source: ChainId, from_batch: u64, first_block: BlockNumber) -> bool {
        self.sourceChain == source
            && match self.import_kind() {
                Ok(ImportKind::Precommit | ImportKind::Qc) => self.sourceHeight >= first_block,
                Ok(ImportKind::Commit | ImportKind::Optimistic) => self.sourceHeight >= from_batch,
                Ok(ImportKind::Proof | ImportKind::Aggregated) | Err(_) => false,
            }
    }
}

/// Hash committing to the roots a block imported: `keccak256(abi.encode(ImportedRoot[]))`.
pub fn imports_hash(imports: &[ImportedRoot]) -> B256 {
    keccak256(imports.to_vec().abi_encode())
}

/// Hash committing to the deposits a block applied: `keccak256(abi.encode(Deposit[]))`.
pub fn deposits_hash(deposits: &[Deposit]) -> B256 {
    keccak256(deposits.to_vec().abi_encode())
}

/// Hash committing to a block's transactions: `keccak256(abi.encode(bytes32[] txHashes))`.
pub fn tx_root(tx_hashes: &[B256]) -> B256 {
    keccak256(tx_hashes.to_vec().abi_encode())
}

impl BlockHeader {
    /// The block hash: `keccak256(abi.encode(header))`.
    pub fn hash(&self) -> BlockHash {
        keccak256(self.abi_encode())
    }

    /// Decodes `abi.encode(header)` bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, PrimitivesError> {
        decode_canonical(bytes, "BlockHeader")
    }
}

impl BatchHeader {
    /// The batch hash: `keccak256(abi.encode(batch))`.
    pub fn hash(&self) -> B256 {
        keccak256(self.abi_encode())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample_message() -> Message {
        Message {
            sourceChain: 901,
            nonce: 7,
            sender: address!("00000000000000000000000000000000000000aa"),
            destChain: 902,
            recipient: address!("00000000000000000000000000000000000000bb"),
            value: U256::from(1_000u64),
            mode: ImportKind::Commit as u8,
            payload: Bytes::from_static(b"hello"),
        }
    }

    #[test]
    fn message_encoding_matches_solidity_abi_encode_of_a_dynamic_struct() {
        let m = sample_message();
        let enc = m.abi_encode();
        // abi.encode(struct with a dynamic member) starts with the offset of the tuple (0x20),
        // followed by eight head words, the bytes length word and one padded data word.
        assert_eq!(enc.len(), 32 * (1 + 8 + 1 + 1));
        assert_eq!(U256::from_be_slice(&enc[..32]), U256::from(32));
        assert_eq!(U256::from_be_slice(&enc[32..64]), U256::from(901));
        assert_eq!(U256::from_be_slice(&enc[64..96]), U256::from(7));
        assert_eq!(Message::decode(&enc).unwrap(), m);
        assert_eq!(m.leaf_hash(), keccak256(&enc));
    }

    #[test]
    fn every_field_changes_the_leaf_hash() {
        let base = sample_message();
        let mut variants = vec![];
        let mut m = base.clone();
        m.sourceChain += 1;
        variants.push(m);
        let mut m = base.clone();
        m.nonce += 1;
        variants.push(m);
        let mut m = base.clone();
        m.sender = Address::ZERO;
        variants.push(m);
        let mut m = base.clone();
        m.destChain += 1;
        variants.push(m);
        let mut m = base.clone();
        m.recipient = Address::ZERO;
        variants.push(m);
        let mut m = base.clone();
        m.value += U256::from(1);
        variants.push(m);
        let mut m = base.clone();
        m.mode = ImportKind::Proof as u8;
        variants.push(m);
        let mut m = base.clone();
        m.payload = Bytes::from_static(b"hellp");
        variants.push(m);
        for v in variants {
            assert_ne!(v.leaf_hash(), base.leaf_hash(), "{v:?}");
        }
    }

    #[test]
    fn malformed_message_bytes_are_a_typed_error() {
        let enc = sample_message().abi_encode();
        assert!(matches!(
            Message::decode(&enc[..enc.len() - 1]),
            Err(PrimitivesError::MalformedAbi { .. })
        ));
        assert!(Message::decode(&[]).is_err());
    }

    #[test]
    fn header_hash_round_trips() {
        let h = BlockHeader {
            chainId: 901,
            number: 3,
            parentHash: B256::repeat_byte(1),
            timestampMs: 12_000,
            sequencer: Address::repeat_byte(2),
            txRoot: tx_root(&[B256::repeat_byte(3)]),
            stateRoot: B256::repeat_byte(4),
            localRoot: B256::repeat_byte(5),
            messageCount: 9,
            importsHash: imports_hash(&[]),
            depositsHash: deposits_hash(&[]),
            depositCount: 0,
            gasUsed: 21_000,
            gasLimit: 30_000_000,
            baseFee: 1_000_000_000,
        };
        let enc = h.abi_encode();
        assert_eq!(
            enc.len(),
            15 * 32,
            "static struct: one word per field, no offset"
        );
        assert_eq!(BlockHeader::decode(&enc).unwrap(), h);
        assert_eq!(h.hash(), keccak256(&enc));
    }

    #[test]
    fn import_kind_tags_round_trip_and_reject_unknown() {
        for k in ImportKind::ALL {
            assert_eq!(ImportKind::try_from(k as u8).unwrap(), k);
        }
        assert_eq!(
            ImportKind::try_from(9),
            Err(PrimitivesError::UnknownImportKind(9))
        );
    }
}
