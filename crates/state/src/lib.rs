//! Provable chain state: a keccak sparse Merkle tree with inclusion and exclusion proofs and batched updates.
//!
//! [`SparseMerkleTree`] maps 256-bit keys ([`B256`]) to 32-byte values ([`B256`]). It is the
//! state commitment of a Braid rollup chain: accounts and system-contract storage slots are keys
//! (the caller derives them as keccak hashes), values are 32-byte words or hashes. The value
//! [`B256::ZERO`] means "absent": writing it deletes the key. [`SparseMerkleTree::prove`] yields an
//! [`SmtProof`] for a single key that [`verify_proof`] (or a Solidity contract) checks against a
//! root, both for inclusion (`key ↦ value`) and exclusion (`key` absent). A [`PartialSmt`] built
//! from a root and a few proofs reads and writes exactly the proven keys and recomputes the root,
//! without the rest of the tree (stateless verification of one step).
//!
//! We evaluated the `jmt` crate, but it is built around versioned storage with its own hasher and
//! proof encoding. We need keccak hashing, proofs a Solidity contract can verify cheaply, and plain
//! in-memory batched updates, so this crate implements its own compact tree.
//!
//! # Tree shape and hashing
//!
//! Conceptually the tree is a full binary tree of depth 256. The path of a key is its bits, most
//! significant bit of byte 0 first: bit `i` (for `i` in `0..256`) is
//! `(key[i / 8] >> (7 - i % 8)) & 1`, or in Solidity `(uint256(key) >> (255 - i)) & 1`.
//! Bit `0` selects the left (`0`) or right (`1`) child of the root, and so on. A node at depth `d`
//! is the root of the subtree of all keys sharing the node's first `d` path bits.
//!
//! The tree is *compact* (Diem/JMT style): the hash of a subtree depends on how many leaves it
//! holds:
//!
//! | leaves in subtree | hash of the subtree                                   |
//! |-------------------|-------------------------------------------------------|
//! | 0                 | `bytes32(0)`                                          |
//! | exactly 1         | `keccak256(0x00 ‖ key ‖ value)` (the leaf hash)        |
//! | 2 or more         | `keccak256(0x01 ‖ left ‖ right)` (the internal hash)   |
//!
//! where `‖` is byte concatenation (65-byte preimages, i.e. Solidity
//! `keccak256(abi.encodePacked(bytes1(0x00), key, value))` and
//! `keccak256(abi.encodePacked(bytes1(0x01), left, right))`), and `left`/`right` are the hashes of
//! the two child subtrees, computed by the same rule. So a leaf sits at the shallowest depth where
//! it is alone in its subtree, and a tree of `n` random keys has depth about `log2(n)`, not 256.
//! Two keys sharing a long prefix produce a chain of internal nodes with a zero sibling down to the
//! depth where they diverge. The empty tree's root is `bytes32(0)`; the root of a one-key tree is
//! that key's leaf hash. The root depends only on the set of `(key, value)` pairs, never on the
//! order in which they were written.
//!
//! # Proof format
//!
//! An [`SmtProof`] for `key` describes the path of `key` from the root down to the first node that
//! holds at most one leaf, at depth `n = siblings.len()` (`n <= 256`):
//!
//! * `siblings[i]` (ordered **from the root downwards**) is the hash of the sibling of the path
//!   node at depth `i + 1`, i.e. the child of the path node at depth `i` on the side *opposite* to
//!   bit `i` of `key`. Siblings may be `bytes32(0)` (empty sibling subtree).
//! * `leaf` is the `(key, value)` of the single leaf in the subtree at depth `n`, or `None` if that
//!   subtree is empty. For an inclusion proof it is `(key, value)` itself; for an exclusion proof
//!   it is either `None` (the slot is empty) or a *different* key sharing the first `n` path bits
//!   with `key`.
//!
//! To verify (`verify_proof(root, key, value, proof)`, value `None` meaning "absent"):
//!
//! ```text
//! require(siblings.length <= 256)
//! if value is Some(v):                       // inclusion
//!     require(v != 0 && leaf is Some((key, v)))
//!     h = keccak256(0x00 ‖ key ‖ v)
//! else if leaf is None:                      // exclusion, empty slot
//!     h = 0
//! else:                                      // exclusion, another leaf occupies the slot
//!     (k', v') = leaf
//!     require(k' != key && v' != 0)
//!     require(the first siblings.length bits of k' and key are equal)
//!     h = keccak256(0x00 ‖ k' ‖ v')
//! for i = siblings.length - 1 down to 0:
//!     if bit i of key == 0: h = keccak256(0x01 ‖ h ‖ siblings[i])
//!     else:                 h = keccak256(0x01 ‖ siblings[i] ‖ h)
//! require(h == root)
//! ```
//!
//! [`SparseMerkleTree::prove`] always returns the shortest such proof. Because leaves and internal
//! nodes use distinct domain prefixes and no keccak output is zero in practice, a proof accepted
//! against a root built by this tree states the truth about that tree (under keccak collision
//! resistance).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

pub mod partial;
pub use partial::{PartialSmt, PartialSmtError};

use alloy_primitives::{keccak256, B256};
use serde::{Deserialize, Serialize};

/// Number of bits in a key, and the maximum depth of the tree.
const KEY_BITS: u16 = 256;

/// The maximum number of siblings an [`SmtProof`] can hold (the key length in bits).
pub const MAX_PROOF_SIBLINGS: usize = 256;

/// Domain prefix of a leaf hash preimage.
const LEAF_PREFIX: u8 = 0x00;
/// Domain prefix of an internal-node hash preimage.
const INTERNAL_PREFIX: u8 = 0x01;

/// The hash of a leaf: `keccak256(0x00 ‖ key ‖ value)`.
pub fn leaf_hash(key: &B256, value: &B256) -> B256 {
    hash_pair(LEAF_PREFIX, key, value)
}

/// The hash of an internal node: `keccak256(0x01 ‖ left ‖ right)`.
pub fn internal_hash(left: &B256, right: &B256) -> B256 {
    hash_pair(INTERNAL_PREFIX, left, right)
}

fn hash_pair(prefix: u8, a: &B256, b: &B256) -> B256 {
    let mut buf = [0u8; 65];
    buf[0] = prefix;
    buf[1..33].copy_from_slice(a.as_slice());
    buf[33..].copy_from_slice(b.as_slice());
    keccak256(buf)
}

/// Bit `index` of `key`, most significant bit of byte 0 first. Out-of-range indices read as `0`.
#[inline]
fn bit(key: &B256, index: u16) -> bool {
    let index = usize::from(index);
    key.0
        .get(index / 8)
        .is_some_and(|byte| (byte >> (7 - index % 8)) & 1 == 1)
}

/// `prefix` with bit `index` set to `1`.
#[inline]
fn with_bit(prefix: &B256, index: u16) -> B256 {
    let index = usize::from(index);
    let mut out = *prefix;
    if let Some(byte) = out.0.get_mut(index / 8) {
        *byte |= 0x80 >> (index % 8);
    }
    out
}

/// `prefix` with every bit at position `depth` or later set to `1`: the largest key in the
/// subtree at `depth` whose smallest key is `prefix`.
#[inline]
fn subtree_last(prefix: &B256, depth: u16) -> B256 {
    let depth = usize::from(depth);
    let mut out = *prefix;
    for (i, byte) in out.0.iter_mut().enumerate() {
        let start = i * 8;
        if start >= depth {
            *byte = 0xff;
        } else if depth - start < 8 {
            *byte |= 0xff >> (depth - start);
        }
    }
    out
}

/// Number of leading path bits `a` and `b` have in common (256 if equal).
fn common_prefix_bits(a: &B256, b: &B256) -> usize {
    for (i, (x, y)) in a.0.iter().zip(b.0.iter()).enumerate() {
        let diff = x ^ y;
        if diff != 0 {
            return i * 8 + diff.leading_zeros() as usize;
        }
    }
    MAX_PROOF_SIBLINGS
}

/// A stored leaf: its value and cached leaf hash.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Leaf {
    value: B256,
    hash: B256,
}

impl Leaf {
    fn new(key: &B256, value: B256) -> Self {
        Self {
            value,
            hash: leaf_hash(key, &value),
        }
    }
}

/// A keccak sparse Merkle tree over 256-bit keys with 32-byte values, kept in memory.
///
/// Leaves live in a sorted map; the hash of every internal node (every subtree with at least two
/// leaves) is cached by `(depth, prefix)`, so an update rehashes only the nodes on the paths of the
/// keys it touches and [`root`](Self::root) is O(1). See the [crate docs](crate) for the hashing
/// rules and the proof format.
#[derive(Clone, Default)]
pub struct SparseMerkleTree {
    /// All present leaves (values are never zero), in key order.
    leaves: BTreeMap<B256, Leaf>,
    /// Hash of every subtree holding two or more leaves, keyed by `(depth, prefix)` where `prefix`
    /// is the subtree's first `depth` path bits followed by zero bits. Exactly these entries, no
    /// stale ones.
    nodes: HashMap<(u16, B256), B256>,
    /// The current root hash.
    root: B256,
}

impl fmt::Debug for SparseMerkleTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SparseMerkleTree")
            .field("root", &self.root)
            .field("len", &self.leaves.len())
            .field("internal_nodes", &self.nodes.len())
            .finish()
    }
}

impl SparseMerkleTree {
    /// An empty tree (root `B256::ZERO`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a tree from `(key, value)` pairs in one pass, in O(n log n).
    ///
    /// Pairs are applied in order, so for a repeated key the last pair wins; a zero value deletes
    /// (is skipped, or removes an earlier pair with the same key).
    pub fn from_leaves(leaves: impl IntoIterator<Item = (B256, B256)>) -> Self {
        let sorted = sort_last_write_wins(leaves);
        let entries: Vec<(B256, Leaf)> = sorted
            .into_iter()
            .filter(|(_, value)| !value.is_zero())
            .map(|(key, value)| (key, Leaf::new(&key, value)))
            .collect();
        let mut tree = Self {
            leaves: BTreeMap::new(),
            nodes: HashMap::with_capacity(entries.len()),
            root: B256::ZERO,
        };
        tree.root = tree.build(0, B256::ZERO, &entries).hash();
        tree.leaves = entries.into_iter().collect();
        tree
    }

    /// The root hash. O(1).
    pub fn root(&self) -> B256 {
        self.root
    }

    /// The value stored under `key`, or `None` if absent.
    pub fn get(&self, key: &B256) -> Option<B256> {
        self.leaves.get(key).map(|leaf| leaf.value)
    }

    /// The number of present keys.
    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    /// Whether the tree holds no keys.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// All present `(key, value)` pairs in ascending key order.
    pub fn iter(&self) -> impl Iterator<Item = (&B256, &B256)> + '_ {
        self.leaves.iter().map(|(key, leaf)| (key, &leaf.value))
    }

    /// Sets `key` to `value` (a zero value deletes the key) and returns the new root.
    pub fn insert(&mut self, key: B256, value: B256) -> B256 {
        self.apply_batch(std::iter::once((key, value)))
    }

    /// Deletes `key` (a no-op if absent) and returns the new root.
    pub fn remove(&mut self, key: &B256) -> B256 {
        self.insert(*key, B256::ZERO)
    }

    /// Applies many writes at once and returns the new root.
    ///
    /// Writes are applied in order, so for a repeated key the last write wins; a zero value
    /// deletes. Writes that change nothing (deleting an absent key, rewriting the same value) cost
    /// no hashing. Every internal node on the paths of the changed keys is rehashed exactly once.
    pub fn apply_batch(&mut self, updates: impl IntoIterator<Item = (B256, B256)>) -> B256 {
        let updates = sort_last_write_wins(updates);
        let mut touched = Vec::with_capacity(updates.len());
        for (key, value) in updates {
            let changed = if value.is_zero() {
                self.leaves.remove(&key).is_some()
            } else {
                match self.leaves.get_mut(&key) {
                    Some(leaf) if leaf.value == value => false,
                    Some(leaf) => {
                        *leaf = Leaf::new(&key, value);
                        true
                    }
                    None => {
                        self.leaves.insert(key, Leaf::new(&key, value));
                        true
                    }
                }
            };
            if changed {
                touched.push(key);
            }
        }
        if !touched.is_empty() {
            self.root = self.update(0, B256::ZERO, &touched).hash();
        }
        self.root
    }

    /// A proof for `key` against [`root`](Self::root): inclusion if `key` is present, exclusion
    /// otherwise. See the [crate docs](crate) for the format.
    pub fn prove(&self, key: &B256) -> SmtProof {
        let mut siblings = Vec::new();
        let mut depth: u16 = 0;
        let mut prefix = B256::ZERO;
        // Walk down while the path node is internal (cached); internal nodes are above depth 256.
        while self.nodes.contains_key(&(depth, prefix)) {
            let right = with_bit(&prefix, depth);
            let (next, sibling) = if bit(key, depth) {
                (right, prefix)
            } else {
                (prefix, right)
            };
            siblings.push(self.subtree(depth + 1, &sibling).hash());
            prefix = next;
            depth += 1;
        }
        // The path node holds at most one leaf.
        let leaf = self
            .leaves_under(depth, &prefix)
            .next()
            .map(|(key, leaf)| (*key, leaf.value));
        SmtProof { siblings, leaf }
    }

    /// The stored leaves in the subtree at `(depth, prefix)`, in key order.
    fn leaves_under(
        &self,
        depth: u16,
        prefix: &B256,
    ) -> std::collections::btree_map::Range<'_, B256, Leaf> {
        self.leaves.range(*prefix..=subtree_last(prefix, depth))
    }

    /// The subtree at `(depth, prefix)`, assuming its cache entries are up to date.
    fn subtree(&self, depth: u16, prefix: &B256) -> Subtree {
        if let Some(hash) = self.nodes.get(&(depth, *prefix)) {
            return Subtree::Internal(*hash);
        }
        // Not cached, so the subtree holds at most one leaf.
        self.leaves_under(depth, prefix)
            .next()
            .map_or(Subtree::Empty, |(_, leaf)| Subtree::Leaf(leaf.hash))
    }

    /// Recomputes the subtree at `(depth, prefix)` after the leaves with keys in `touched`
    /// (sorted, non-empty, all inside the subtree) changed in `self.leaves`; brings the cache
    /// entries of the subtree up to date and returns it.
    ///
    /// Only nodes on the paths of touched keys are visited, each once. The walk stops at the first
    /// node that was not internal before the change: it held at most one leaf, so it now holds at
    /// most `1 + touched.len()` and has no cached descendants; it is rebuilt from its leaves.
    fn update(&mut self, depth: u16, prefix: B256, touched: &[B256]) -> Subtree {
        if !self.nodes.contains_key(&(depth, prefix)) {
            let leaves: Vec<(B256, Leaf)> = self
                .leaves_under(depth, &prefix)
                .map(|(key, leaf)| (*key, leaf.clone()))
                .collect();
            return self.build(depth, prefix, &leaves);
        }
        // Internal before the change, so depth < 256.
        let right_prefix = with_bit(&prefix, depth);
        let (left_keys, right_keys) =
            touched.split_at(touched.partition_point(|key| !bit(key, depth)));
        let left = if left_keys.is_empty() {
            self.subtree(depth + 1, &prefix)
        } else {
            self.update(depth + 1, prefix, left_keys)
        };
        let right = if right_keys.is_empty() {
            self.subtree(depth + 1, &right_prefix)
        } else {
            self.update(depth + 1, right_prefix, right_keys)
        };
        let node = Subtree::join(left, right);
        match node {
            Subtree::Internal(hash) => self.nodes.insert((depth, prefix), hash),
            // Down to at most one leaf: no longer an internal node.
            Subtree::Empty | Subtree::Leaf(_) => self.nodes.remove(&(depth, prefix)),
        };
        node
    }

    /// Caches the internal nodes of the subtree at `(depth, prefix)` holding exactly `leaves`
    /// (sorted, distinct keys, all inside the subtree) and returns it.
    fn build(&mut self, depth: u16, prefix: B256, leaves: &[(B256, Leaf)]) -> Subtree {
        match leaves {
            [] => Subtree::Empty,
            [(_, leaf)] => Subtree::Leaf(leaf.hash),
            _ => {
                // Two or more distinct keys, so depth < 256.
                let (left_leaves, right_leaves) =
                    leaves.split_at(leaves.partition_point(|(key, _)| !bit(key, depth)));
                let left = self.build(depth + 1, prefix, left_leaves);
                let right = self.build(depth + 1, with_bit(&prefix, depth), right_leaves);
                let hash = internal_hash(&left.hash(), &right.hash());
                self.nodes.insert((depth, prefix), hash);
                Subtree::Internal(hash)
            }
        }
    }
}

/// A subtree's hash, tagged with how many leaves (none, one, two or more) it holds.
#[derive(Clone, Copy, Debug)]
enum Subtree {
    /// No leaves: hash `B256::ZERO`.
    Empty,
    /// Exactly one leaf: the leaf hash.
    Leaf(B256),
    /// Two or more leaves: an internal-node hash.
    Internal(B256),
}

impl Subtree {
    fn hash(self) -> B256 {
        match self {
            Self::Empty => B256::ZERO,
            Self::Leaf(hash) | Self::Internal(hash) => hash,
        }
    }

    /// The parent of two sibling subtrees. A lone leaf moves up (compaction).
    fn join(left: Self, right: Self) -> Self {
        match (left, right) {
            (Self::Empty, Self::Empty) => Self::Empty,
            (Self::Empty, Self::Leaf(hash)) | (Self::Leaf(hash), Self::Empty) => Self::Leaf(hash),
            _ => Self::Internal(internal_hash(&left.hash(), &right.hash())),
        }
    }
}

/// Sorts writes by key, keeping only the last write of each key.
fn sort_last_write_wins(writes: impl IntoIterator<Item = (B256, B256)>) -> Vec<(B256, B256)> {
    let mut writes: Vec<(B256, B256)> = writes.into_iter().collect();
    // Stable: writes to the same key stay in their original order.
    writes.sort_by_key(|(key, _)| *key);
    let mut deduped: Vec<(B256, B256)> = Vec::with_capacity(writes.len());
    for (key, value) in writes {
        match deduped.last_mut() {
            Some(last) if last.0 == key => last.1 = value,
            _ => deduped.push((key, value)),
        }
    }
    deduped
}

/// A proof that a key maps to a value, or is absent, in a [`SparseMerkleTree`] with a given root.
///
/// See the [crate docs](crate) for the exact format and verification algorithm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtProof {
    /// Sibling hashes along the key's path, ordered **from the root downwards**: `siblings[i]` is
    /// the sibling of the path node at depth `i + 1`. At most [`MAX_PROOF_SIBLINGS`] entries.
    pub siblings: Vec<B256>,
    /// The `(key, value)` of the single leaf in the subtree where the path ends, or `None` if that
    /// subtree is empty. For an exclusion proof this is a different key sharing the path prefix.
    pub leaf: Option<(B256, B256)>,
}

/// Why a [`verify_proof`] call failed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    /// The proof is deeper than the tree can be.
    #[error("proof has {len} siblings, at most {max} are allowed")]
    TooManySiblings {
        /// Number of siblings in the proof.
        len: usize,
        /// The maximum, [`MAX_PROOF_SIBLINGS`].
        max: usize,
    },
    /// An inclusion proof was requested for a zero value; zero means absent, prove it with `None`.
    #[error("claimed value for key {key} is zero; prove absence with `None` instead")]
    ZeroValueClaimed {
        /// The key being proven.
        key: B256,
    },
    /// The proof's leaf carries a zero value, which no tree stores.
    #[error("proof leaf {leaf_key} has a zero value")]
    ZeroValueInProof {
        /// The key of the proof's leaf.
        leaf_key: B256,
    },
    /// An inclusion proof ends at an empty subtree.
    #[error("inclusion proof for key {key} ends without a leaf")]
    MissingLeaf {
        /// The key being proven.
        key: B256,
    },
    /// An inclusion proof ends at a leaf for another key.
    #[error("inclusion proof for key {expected} ends at the leaf of key {found}")]
    LeafKeyMismatch {
        /// The key being proven.
        expected: B256,
        /// The key of the proof's leaf.
        found: B256,
    },
    /// An inclusion proof's leaf holds a different value than claimed.
    #[error("inclusion proof for key {key} holds value {found}, but {claimed} was claimed")]
    ValueMismatch {
        /// The key being proven.
        key: B256,
        /// The value the caller claimed.
        claimed: B256,
        /// The value in the proof's leaf.
        found: B256,
    },
    /// An exclusion proof ends at the leaf of the very key claimed absent.
    #[error("exclusion proof for key {key} ends at that key's own leaf")]
    ExclusionLeafIsTarget {
        /// The key claimed absent.
        key: B256,
    },
    /// An exclusion proof's leaf is not on the key's path at the proof's depth.
    #[error(
        "exclusion proof leaf {leaf_key} shares {common_bits} leading bits with key {key}, \
         but the proof reaches depth {depth}"
    )]
    LeafOffPath {
        /// The key claimed absent.
        key: B256,
        /// The key of the proof's leaf.
        leaf_key: B256,
        /// Number of leading path bits the two keys share.
        common_bits: usize,
        /// The proof depth (number of siblings).
        depth: usize,
    },
    /// The proof does not lead to the expected root.
    #[error("proof computes root {computed}, expected {expected}")]
    RootMismatch {
        /// The root the proof was checked against.
        expected: B256,
        /// The root the proof leads to.
        computed: B256,
    },
}

/// Checks `proof` against `root`: with `value = Some(v)` that `key ↦ v`, with `None` that `key` is
/// absent. Never panics, whatever the input.
///
/// See the [crate docs](crate) for the algorithm.
pub fn verify_proof(
    root: B256,
    key: B256,
    value: Option<B256>,
    proof: &SmtProof,
) -> Result<(), StateError> {
    let depth = proof.siblings.len();
    if depth > MAX_PROOF_SIBLINGS {
        return Err(StateError::TooManySiblings {
            len: depth,
            max: MAX_PROOF_SIBLINGS,
        });
    }
    let mut hash = match (value, proof.leaf) {
        (Some(claimed), _) if claimed.is_zero() => {
            return Err(StateError::ZeroValueClaimed { key });
        }
        (_, Some((leaf_key, leaf_value))) if leaf_value.is_zero() => {
            return Err(StateError::ZeroValueInProof { leaf_key });
        }
        (Some(_), None) => return Err(StateError::MissingLeaf { key }),
        (Some(claimed), Some((leaf_key, found))) => {
            if leaf_key != key {
                return Err(StateError::LeafKeyMismatch {
                    expected: key,
                    found: leaf_key,
                });
            }
            if found != claimed {
                return Err(StateError::ValueMismatch {
                    key,
                    claimed,
                    found,
                });
            }
            leaf_hash(&key, &claimed)
        }
        (None, None) => B256::ZERO,
        (None, Some((leaf_key, leaf_value))) => {
            if leaf_key == key {
                return Err(StateError::ExclusionLeafIsTarget { key });
            }
            let common_bits = common_prefix_bits(&key, &leaf_key);
            if common_bits < depth {
                return Err(StateError::LeafOffPath {
                    key,
                    leaf_key,
                    common_bits,
                    depth,
                });
            }
            leaf_hash(&leaf_key, &leaf_value)
        }
    };
    for (index, sibling) in (0..KEY_BITS).zip(proof.siblings.iter()).rev() {
        hash = if bit(&key, index) {
            internal_hash(sibling, &hash)
        } else {
            internal_hash(&hash, sibling)
        };
    }
    if hash != root {
        return Err(StateError::RootMismatch {
            expected: root,
            computed: hash,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
