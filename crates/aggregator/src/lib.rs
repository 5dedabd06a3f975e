//! The shared proof aggregator of seed 001: per-chain checkpoint statements, a linked binary
//! aggregation tree over the chains whose nodes settle downstream imports, two proof backends
//! (re-execution and plonky2 recursion) and the emergency exit, as a sans-IO core.
//!
//! # Checkpoints and leaves
//! Every `checkpoint_blocks` blocks (checkpoint `i`, the chain's block at height
//! `i * checkpoint_blocks`) each chain `c` hands the aggregator its checkpoint statement `A_i`, a
//! [`LeafInput`]: `(c, i, block hash at i-1, block hash at i, imports since i-1)`. Block hashes are
//! the chains' keccak256 header hashes. Checkpoint 0 is genesis: the tree at 0 is computed from
//! the genesis block hashes without proofs ([`AggregatorState::genesis`], [`RootChain::genesis`]).
//!
//! **What a leaf proof attests.** A leaf proof binds the statement: chain `c` at checkpoint `i`
//! moved from block hash `p` to block hash `b` and imported exactly the listed tree hashes; its
//! outputs are the leaf hashes `leaf(c, p)` and `leaf(c, b)` and the exports derived from the
//! imports (below), checked for form (ancestor, age). It does **not** attest that the blocks from
//! `p` to `b` are a valid execution, nor that the import list is the one committed in those
//! blocks' headers: that evidence is, today, re-execution of the chain's blocks from their data
//! (the settlement layer's existing proof backends when a chain's batches settle, and the
//! aggregator before it accepts a statement). A chain validity proof verified inside the leaf
//! circuit would replace it without changing anything above the leaves.
//!
//! # The tree
//! [`TreeShape`] over `N` chains: level 0 holds the `N` leaves in chain order, level `l` holds
//! `ceil(N / 2^l)` nodes, and node `(l, k)` has the children `(l-1, 2k)` and, if it exists,
//! `(l-1, 2k+1)` (the last node of a level above an odd level has one child). The depth is
//! `max(1, ceil(log2 N))`, so the root is always a node `(depth, 0)` with its own hash chain,
//! even for one chain. Every leaf `c` has exactly one ancestor per level: `(l, c >> l)`.
//!
//! Node `n` at checkpoint `i` verifies its children's proofs (each outputs its hash at `i-1` and
//! at `i`) and takes one extra input, its own hash at `i-2` (`x`; zero for `i = 1`). It computes
//! ```text
//! H_n(i-1) = node(n, left.prev, right.prev, x)          // recomputed, not trusted
//! H_n(i)   = node(n, left.hash, right.hash, H_n(i-1))
//! ```
//! and outputs `(H_n(i-1), H_n(i))`. So the root `B_i` outputs `hash(B_{i-1})` and
//! `hash(B_i)`, and the settlement layer accepts `B_i` only if its first output is the root hash
//! it accepted at `i-1` ([`RootChain::accept`]). Because every node's previous hash is
//! recomputed from its children's previous hashes, that single comparison at the root links the
//! whole tree at `i` to the whole tree at `i-1` (by collision resistance, down to the leaves,
//! whose previous hash is the chain's block hash at `i-1`): a wrong `x` or a wrong previous
//! block hash anywhere makes the root's first output wrong.
//!
//! # Imports and exports
//! During the blocks of checkpoint `i` (after checkpoint `i-1`), chain `c` may import the hash of
//! an **ancestor** `n = (l, c >> l)`, `1 <= l <= depth`, at checkpoint `j` with
//! `j = i-1` (age 1) or `j = i-2` (age 2, needs `i >= 2`): exactly the two hashes of `n` that
//! `n`'s proof at `i` has in hand (`H_n(i-1)` recomputed, `x = H_n(i-2)` linked to it). Any
//! other import is refused when the leaf is proven ([`AggregatorError::NotAnAncestor`],
//! [`AggregatorError::ImportOutOfWindow`]).
//!
//! Each import becomes an [`Export`] keyed by `(level, age)` (the ancestor is implied by the
//! level). A proof's exports are the union of its children's exports; two exports with the same
//! key must carry the same hash (both claim the same node hash) or the proof is impossible. The
//! node at level `l` **settles** the exports of level `l`: age 1 must equal its `H_n(i-1)`, age 2
//! its `x`; a mismatch makes its proof impossible ([`AggregatorError::ImportMismatch`] in the
//! re-execution backend, an unsatisfiable circuit in the recursive one). Settled exports are
//! removed, so a proof at level `l` exports at most `2 * (depth - l)` hashes, and at most
//! `depth - l` when imports use one age ([`export_stats`]; for 100 chains, depth 7: at most 7
//! per leaf proof, 6 per level-1 proof, ... 0 at the root). The recursive backend has exactly
//! `2 * depth` export slots in every proof's public inputs.
//!
//! # Backends
//! [`TreeProver`] / [`TreeVerifier`] (with the node hash function [`TreeHasher`]):
//! - [`ReexecBackend`]: keccak256 node hashes (`keccak256(abi.encode(...))`, see
//!   [`KeccakHasher`]); the "proof" of a node is all the data of its subtree and verification
//!   recomputes every hash and every settlement. Sound, not succinct.
//! - [`RecursiveBackend`]: plonky2 (standard recursion config, Goldilocks, Poseidon node hashes,
//!   see [`PoseidonHasher`]); one circuit for the leaves and one per level, each level verifying
//!   two proofs of the level below. Verifying the root proof verifies all `N` chains.
//!
//! # Emergency exit and resumption
//! If the aggregator stalls, a chain proves its leaf in the last accepted root with a
//! [`LeafPath`] and continues alone with its own statements ([`verify_exit`]); another aggregator
//! resumes from the last tree's node hashes ([`AggregatorState::resume`] with a [`TreeSnapshot`]).

mod hash;
mod recursive;
mod reexec;
mod state;
mod tree;

pub use alloy_primitives::B256;
pub use hash::{KeccakHasher, PoseidonHasher, TreeHasher};
pub use recursive::{RecursiveBackend, RecursiveProof};
pub use reexec::{ReexecBackend, ReexecProof};
pub use state::{
    verify_exit, AggregatorState, CheckpointProofs, ExitOutcome, LeafPath, NodeHashes, PathStep,
    RootChain, TreeSnapshot,
};
pub use tree::{export_stats, leaf_statement, node_statement, LevelExportStats};

use serde::{Deserialize, Serialize};

/// Index of a chain in the aggregation tree (its leaf position, fixed order).
pub type ChainIndex = u32;
/// A checkpoint number; checkpoint 0 is genesis.
pub type Checkpoint = u64;

/// Most chains one tree aggregates (depth at most 16).
pub const MAX_CHAINS: u32 = 1 << 16;
/// Largest checkpoint number (it is a public input of the recursive circuits, kept below the
/// Goldilocks modulus).
pub const MAX_CHECKPOINT: Checkpoint = u32::MAX as u64;
/// Most imports one checkpoint statement may list (duplicates included).
pub const MAX_IMPORTS_PER_LEAF: usize = 1024;

/// Errors of the aggregator core. Every refused input changes no state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregatorError {
    /// A tree over no chains or over more than [`MAX_CHAINS`].
    #[error("a tree aggregates 1..={max} chains, not {chains}", max = MAX_CHAINS)]
    InvalidShape {
        /// The requested number of chains.
        chains: u64,
    },
    /// A backend, state or root chain built for another tree shape.
    #[error("tree shape over {got} chains used where {expected} chains are aggregated")]
    ShapeMismatch {
        /// Chains of the expected shape.
        expected: u32,
        /// Chains of the given shape.
        got: u32,
    },
    /// A position that is not a node (or leaf) of the tree.
    #[error("no node ({level}, {index}) in a tree over {chains} chains")]
    NoSuchNode {
        /// Level.
        level: u8,
        /// Index in the level.
        index: u32,
        /// Chains in the tree.
        chains: u32,
    },
    /// A proof built for a different tree shape or level than the one it is used at.
    #[error("proof of ({got_level}, {got_index}) used where ({level}, {index}) is expected")]
    WrongChild {
        /// Expected level.
        level: u8,
        /// Expected index.
        index: u32,
        /// Level of the proof.
        got_level: u8,
        /// Index of the proof.
        got_index: u32,
    },
    /// A right child given to a node without one, or missing for a node with one.
    #[error("node ({level}, {index}) has {expected} children")]
    WrongChildCount {
        /// Level.
        level: u8,
        /// Index.
        index: u32,
        /// Children the shape gives it.
        expected: usize,
    },
    /// Children (or a leaf) at a checkpoint other than the one being proven.
    #[error("checkpoint {got} where {expected} is expected")]
    WrongCheckpoint {
        /// Expected checkpoint.
        expected: Checkpoint,
        /// Given checkpoint.
        got: Checkpoint,
    },
    /// A checkpoint number above [`MAX_CHECKPOINT`] (or checkpoint 0, which is genesis).
    #[error("checkpoint {0} is out of range 1..={max}", max = MAX_CHECKPOINT)]
    CheckpointOutOfRange(Checkpoint),
    /// Leaves given for a checkpoint do not cover the chains in order.
    #[error("expected {expected} leaves in chain order, got {got}")]
    WrongLeaves {
        /// Chains in the tree.
        expected: usize,
        /// Leaves given.
        got: usize,
    },
    /// A leaf whose previous block hash is not the chain's block hash at the last checkpoint.
    #[error("chain {chain}: previous block hash {got} is not the last checkpoint's {expected}")]
    WrongPrevBlockHash {
        /// The chain.
        chain: ChainIndex,
        /// Its block hash at the last checkpoint.
        expected: B256,
        /// The leaf's previous block hash.
        got: B256,
    },
    /// More than [`MAX_IMPORTS_PER_LEAF`] imports in one statement.
    #[error("chain {chain} lists {count} imports, at most {max}", max = MAX_IMPORTS_PER_LEAF)]
    TooManyImports {
        /// The chain.
        chain: ChainIndex,
        /// Imports listed.
        count: usize,
    },
    /// An import of a node that is not an ancestor of the importing chain's leaf.
    #[error("chain {chain} imported node ({level}, {index}), which is not one of its ancestors")]
    NotAnAncestor {
        /// The chain.
        chain: ChainIndex,
        /// Level of the imported node.
        level: u8,
        /// Index of the imported node.
        index: u32,
    },
    /// An import of a checkpoint other than `i-1` and `i-2` in statement `i`.
    #[error("statement {checkpoint} imports checkpoint {imported}: only i-1 and i-2 settle")]
    ImportOutOfWindow {
        /// The statement's checkpoint `i`.
        checkpoint: Checkpoint,
        /// The imported checkpoint.
        imported: Checkpoint,
    },
    /// Two exports claim different hashes for the same node and checkpoint.
    #[error("conflicting exports for level {level}, age {age}: {a} vs {b}")]
    ConflictingExports {
        /// Level of the imported node.
        level: u8,
        /// Age (1: `i-1`, 2: `i-2`).
        age: u8,
        /// One claimed hash.
        a: B256,
        /// The other.
        b: B256,
    },
    /// An export that does not match the hash the node recomputes: a forged or wrong import.
    #[error("node ({level}, {index}) at checkpoint {checkpoint}: imported {imported} but its hash there is {actual}")]
    ImportMismatch {
        /// Level of the settling node.
        level: u8,
        /// Index of the settling node.
        index: u32,
        /// The imported checkpoint.
        checkpoint: Checkpoint,
        /// The imported hash.
        imported: B256,
        /// The node's hash at that checkpoint.
        actual: B256,
    },
    /// An export that reached a node above the one that should have settled it.
    #[error("export for level {level} left unsettled at level {at}")]
    UnsettledExport {
        /// The export's level.
        level: u8,
        /// Where it was found.
        at: u8,
    },
    /// A 32-byte value that is not a canonical Poseidon digest (4 Goldilocks elements).
    #[error("{0} is not a canonical Poseidon digest")]
    NonCanonicalDigest(B256),
    /// The settlement layer's check of a root: not the root, or not linked to the last one.
    #[error("root refused: {reason}")]
    RootRefused {
        /// What did not match.
        reason: String,
    },
    /// A tree snapshot whose hashes do not recompute to the root it claims.
    #[error("snapshot refused: {reason}")]
    SnapshotRefused {
        /// What did not match.
        reason: String,
    },
    /// An emergency-exit claim that does not check out.
    #[error("exit refused: {reason}")]
    ExitRefused {
        /// What did not match.
        reason: String,
    },
    /// The recursive prover could not build a proof (an unsatisfiable circuit: wrong import,
    /// wrong child, ...) or a proof did not verify.
    #[error("recursive proof failed: {reason}")]
    Recursive {
        /// The prover's or verifier's message.
        reason: String,
    },
    /// A proof that does not decode.
    #[error("malformed proof: {reason}")]
    MalformedProof {
        /// The decoder's message.
        reason: String,
    },
}

/// A position in the tree: level 0 holds the leaves (index = chain index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId {
    /// Level (0 = leaves, `depth` = root).
    pub level: u8,
    /// Index within the level.
    pub index: u32,
}

impl NodeId {
    /// The node at `(level, index)`.
    pub const fn new(level: u8, index: u32) -> Self {
        Self { level, index }
    }
}

/// The fixed shape of an aggregation tree over `chains` chains (see the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct TreeShape {
    chains: u32,
}

impl TryFrom<u32> for TreeShape {
    type Error = AggregatorError;
    fn try_from(chains: u32) -> Result<Self, AggregatorError> {
        Self::new(chains)
    }
}

impl From<TreeShape> for u32 {
    fn from(shape: TreeShape) -> u32 {
        shape.chains
    }
}

impl TreeShape {
    /// A tree over `chains` chains, `1..=MAX_CHAINS`.
    pub fn new(chains: u32) -> Result<Self, AggregatorError> {
        if chains == 0 || chains > MAX_CHAINS {
            return Err(AggregatorError::InvalidShape {
                chains: u64::from(chains),
            });
        }
        Ok(Self { chains })
    }
    /// Number of chains (leaves).
    pub fn chains(&self) -> u32 {
        self.chains
    }
    /// Level of the root: `max(1, ceil(log2 chains))`.
    pub fn depth(&self) -> u8 {
        braid_primitives::aggregation::tree_depth(self.chains)
    }
    /// Nodes at `level` (`ceil(chains / 2^level)`, 0 above the root).
    pub fn nodes_at(&self, level: u8) -> u32 {
        braid_primitives::aggregation::tree_nodes_at(self.chains, level)
    }
    /// The root.
    pub fn root(&self) -> NodeId {
        NodeId::new(self.depth(), 0)
    }
    /// Whether `node` is a position of this tree (leaf or node).
    pub fn contains(&self, node: NodeId) -> bool {
        node.index < self.nodes_at(node.level)
    }
    /// Whether node `node` (level >= 1) has a right child.
    pub fn has_right(&self, node: NodeId) -> bool {
        braid_primitives::aggregation::tree_has_right(self.chains, node.level, node.index)
    }
    /// The ancestor of chain `chain`'s leaf at `level` (`1..=depth`).
    pub fn ancestor(&self, chain: ChainIndex, level: u8) -> Option<NodeId> {
        (chain < self.chains && level >= 1 && level <= self.depth())
            .then(|| NodeId::new(level, chain >> level))
    }
    /// All node positions (level >= 1), level by level, left to right.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        (1..=self.depth()).flat_map(move |l| (0..self.nodes_at(l)).map(move |k| NodeId::new(l, k)))
    }
    /// Errors unless `node` is a node (level >= 1) of this tree.
    fn check_node(&self, node: NodeId) -> Result<(), AggregatorError> {
        if node.level == 0 || !self.contains(node) {
            return Err(AggregatorError::NoSuchNode {
                level: node.level,
                index: node.index,
                chains: self.chains,
            });
        }
        Ok(())
    }
}

/// A chain's import of an aggregation-tree node hash, as listed in its checkpoint statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Import {
    /// The imported node (must be an ancestor of the chain's leaf).
    pub node: NodeId,
    /// The checkpoint whose hash of `node` was imported (`i-1` or `i-2` in statement `i`).
    pub checkpoint: Checkpoint,
    /// The imported hash.
    pub hash: B256,
}

/// A chain's checkpoint statement `A_i`: the leaf input of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeafInput {
    /// The chain (its leaf position).
    pub chain: ChainIndex,
    /// The checkpoint `i` (>= 1).
    pub checkpoint: Checkpoint,
    /// The chain's block hash at checkpoint `i-1`.
    pub prev_block_hash: B256,
    /// The chain's block hash at checkpoint `i`.
    pub block_hash: B256,
    /// Tree hashes the chain imported in its blocks since checkpoint `i-1`.
    pub imports: Vec<Import>,
}

/// An import travelling up the tree, keyed by the level of the ancestor that settles it and its
/// age (1: the hash at `i-1`, 2: the hash at `i-2`, for a proof at checkpoint `i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Export {
    /// Level of the ancestor that settles it.
    pub level: u8,
    /// 1 or 2.
    pub age: u8,
    /// The claimed node hash.
    pub hash: B256,
}

/// The public statement of a leaf or node proof at one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeStatement {
    /// The position proven.
    pub node: NodeId,
    /// The checkpoint `i`.
    pub checkpoint: Checkpoint,
    /// The position's hash at `i-1`.
    pub prev_hash: B256,
    /// The position's hash at `i`.
    pub hash: B256,
    /// Imports from below not settled yet, sorted by `(level, age)`, one per key.
    pub exports: Vec<Export>,
}

/// Proof verification: what the settlement layer (for the root) and the chains (for
/// intermediate proofs) run.
pub trait TreeVerifier {
    /// A proof of one tree position at one checkpoint.
    type Proof: Clone + std::fmt::Debug;
    /// The node hash function of this backend.
    type Hasher: TreeHasher;
    /// The tree shape this backend proves.
    fn shape(&self) -> TreeShape;
    /// The node hash function.
    fn hasher(&self) -> Self::Hasher;
    /// Verifies `proof` and returns the statement it proves.
    fn verify(&self, proof: &Self::Proof) -> Result<NodeStatement, AggregatorError>;
    /// Size of `proof` in its wire encoding, in bytes.
    fn proof_size_bytes(&self, proof: &Self::Proof) -> usize;
}

/// Proof generation: what the aggregator runs, bottom-up, at each checkpoint.
pub trait TreeProver: TreeVerifier {
    /// Proves chain `leaf.chain`'s checkpoint statement.
    fn prove_leaf(&self, leaf: &LeafInput) -> Result<Self::Proof, AggregatorError>;
    /// Proves node `node` from its children's proofs and its own hash two checkpoints back
    /// (`prev_prev_hash`, zero at checkpoint 1).
    fn prove_node(
        &self,
        node: NodeId,
        left: &Self::Proof,
        right: Option<&Self::Proof>,
        prev_prev_hash: B256,
    ) -> Result<Self::Proof, AggregatorError>;
}

#[cfg(test)]
mod tests;
