//! Append-only keccak Merkle tree of a chain's outgoing messages, with inclusion and extension proofs.
//!
//! # The tree
//!
//! The tree is the standard depth-32 keccak256 incremental Merkle tree used by Ethereum bridges
//! (Ethereum deposit-contract style, with keccak256 instead of sha256):
//!
//! * There are `2^32` leaf slots ([`MAX_LEAVES`]); leaf `i` is the `i`-th appended message hash.
//!   Slots at or beyond the current size hold `bytes32(0)`.
//! * Level 0 holds the leaves; the node at level `h + 1`, position `j` is
//!   `hash_pair(node(h, 2j), node(h, 2j + 1))` where
//!   `hash_pair(l, r) = keccak256(l ‖ r)` (64 bytes, i.e. `keccak256(abi.encodePacked(l, r))`).
//! * `zero_hashes()[0] = bytes32(0)` and `zero_hashes()[h + 1] = hash_pair(z[h], z[h])`: the root
//!   of an all-empty subtree of height `h` ([`zero_hashes`]).
//! * The *raw root* is the level-32 node. It does not bind the number of leaves, so the committed
//!   root mixes in the size:
//!
//! ```text
//! root_at(size) = keccak256(abi.encode(bytes32 rawRoot, uint256 size))
//!               = keccak256(rawRoot ‖ uint256_be(size))          // 64 bytes
//! ```
//!
//! The root of the empty tree is [`empty_root`] = `keccak256(zero_hashes()[32] ‖ uint256(0))`.
//! A zero leaf is rejected on append ([`MerkleError::ZeroLeaf`]); message leaves are keccak
//! hashes, and rejecting zero makes every prefix of the tree distinct.
//!
//! Appending is O(1) amortised (on average fewer than one `hash_pair` per append) using a
//! 32-node frontier; [`MessageTree::root`] costs 33 hashes the first time after a change and
//! nothing after that (it is cached until the next append or truncate). The tree also caches every complete
//! internal node so that historical roots and proofs cost O(32) hashes.
//!
//! # Notation used by the proof formats
//!
//! * `d(size)` = `ceil(log2(size))` for `size >= 1` (so `d(1) = 0`, `d(2) = 1`, `d(3) = d(4) = 2`,
//!   `d(2^32) = 32`), and `d(0) = 0`. It is the number of levels that can contain non-zero nodes
//!   in a tree of `size` leaves: above level `d(size)`, every sibling on the path from leaf 0 is
//!   a zero subtree.
//! * "bit `h` of `x`" is `(x >> h) & 1`.
//! * The *sibling at level `h`* of the path of leaf `index` is the node at level `h`, position
//!   `(index >> h) ^ 1`. It is a *right* sibling if bit `h` of `index` is 0 and a *left* sibling
//!   otherwise. It is *beyond* a `size` if its first leaf, `((index >> h) ^ 1) << h`, is `>= size`;
//!   such a sibling is necessarily `zero_hashes()[h]`.
//!
//! # Inclusion proof ([`InclusionProof`], [`verify_inclusion`])
//!
//! Proves that `leaf` is leaf number `index` of the tree whose committed root is
//! `root = root_at(size)`. The proof carries `index`, `size` and `siblings`, where
//! `siblings[h]` (for `h in 0..d(size)`) is the sibling at level `h` of the path of leaf `index`
//! in the tree of `size` leaves. Siblings above `d(size)` are implicit (`zero_hashes()[h]`).
//!
//! Verifier (a Solidity contract can implement exactly this):
//!
//! ```text
//! require(size <= 2^32);
//! require(index < size);
//! require(leaf != 0);
//! require(siblings.length == d(size));
//! node = leaf;
//! for h in 0..32:
//!     sib = h < d(size) ? siblings[h] : zero_hashes[h];
//!     if (((index >> h) ^ 1) << h) >= size: require(sib == zero_hashes[h]);   // strictness
//!     node = bit h of index == 1 ? keccak256(sib ‖ node) : keccak256(node ‖ sib);
//! require(keccak256(node ‖ uint256(size)) == root);
//! ```
//!
//! # Extension proof ([`ExtensionProof`], [`verify_extension`])
//!
//! Proves that the tree committed by `old_root = root_at(old_size)` is a prefix of the tree
//! committed by `new_root = root_at(new_size)` (same first `old_size` leaves). It plays the role
//! of an RFC 9162 consistency proof, but is simpler because slots beyond the size are zero.
//!
//! Cases:
//!
//! * `old_size > new_size`, or either size `> 2^32`: invalid.
//! * `old_size == 0`: `hashes` must be empty and `old_root` must equal [`empty_root`]; any
//!   `new_root` is accepted (every tree extends the empty tree).
//! * `old_size == new_size`: `hashes` must be empty and `old_root == new_root`.
//! * `0 < old_size < new_size`: let `k = old_size - 1` (the last old leaf) and `D = d(new_size)`
//!   (`D >= 1`). Then `hashes.length == 1 + D`, with
//!   * `hashes[0]` = leaf `k` (must be non-zero);
//!   * `hashes[1 + h]` for `h in 0..D` = the sibling at level `h` of the path of leaf `k`:
//!     - if bit `h` of `k` is 1 it is a **left** sibling: a complete subtree of old leaves,
//!       identical in both trees;
//!     - if bit `h` of `k` is 0 it is a **right** sibling: it is `zero_hashes[h]` in the old tree
//!       (all its leaves are `>= old_size`), and the proof carries its value **in the new tree**.
//!       If it is beyond `new_size` it must equal `zero_hashes[h]`.
//!
//!   Above level `D` every sibling is a right zero subtree in both trees.
//!
//! Verifier:
//!
//! ```text
//! k = old_size - 1; D = d(new_size);
//! require(hashes.length == 1 + D);
//! require(hashes[0] != 0);
//! oldNode = newNode = hashes[0];
//! for h in 0..32:
//!     if h < D:
//!         sib = hashes[1 + h];
//!         if bit h of k == 1:                        // left sibling, shared
//!             oldNode = keccak256(sib ‖ oldNode); newNode = keccak256(sib ‖ newNode);
//!         else:                                      // right sibling
//!             if (((k >> h) ^ 1) << h) >= new_size: require(sib == zero_hashes[h]);
//!             oldNode = keccak256(oldNode ‖ zero_hashes[h]); newNode = keccak256(newNode ‖ sib);
//!     else:                                          // k >> h == 0: right zero sibling in both
//!         oldNode = keccak256(oldNode ‖ zero_hashes[h]); newNode = keccak256(newNode ‖ zero_hashes[h]);
//! require(keccak256(oldNode ‖ uint256(old_size)) == old_root);
//! require(keccak256(newNode ‖ uint256(new_size)) == new_root);
//! ```
//!
//! Soundness: the old root fixes leaf `k` and every left sibling on its path, i.e. all leaves
//! `0..old_size`; the new root is recomputed from the same leaf and left siblings, so the new
//! tree has the same first `old_size` leaves.
//!
//! # Append witness ([`AppendWitness`], [`verify_append`])
//!
//! Lets a verifier that knows a tree only by its committed root `old_root = root_at(size)`
//! append one leaf and compute the new root `root_at(size + 1)` (the single-step verifier of
//! optimistic settlement does this for a `sendMessage`). The witness is the *frontier*: the
//! **left** siblings of the path of leaf index `size` (the slot the new leaf goes into),
//! `left_siblings[j]` being the sibling at the `j`-th level `h` (ascending) where bit `h` of
//! `size` is 1 — exactly `popcount(size)` hashes, each a complete subtree of existing leaves.
//! Every right sibling on that path lies beyond `size + 1`, so it is `zero_hashes[h]`.
//!
//! Verifier:
//!
//! ```text
//! require(size < 2^32);                              // a full tree cannot grow
//! require(leaf != 0);
//! require(left_siblings.length == popcount(size));
//! oldNode = 0; newNode = leaf; j = 0;                // slot `size` is zero in the old tree
//! for h in 0..32:
//!     if bit h of size == 1:
//!         sib = left_siblings[j++];
//!         oldNode = keccak256(sib ‖ oldNode); newNode = keccak256(sib ‖ newNode);
//!     else:
//!         oldNode = keccak256(oldNode ‖ zero_hashes[h]); newNode = keccak256(newNode ‖ zero_hashes[h]);
//! require(keccak256(oldNode ‖ uint256(size)) == old_root);
//! newRoot = keccak256(newNode ‖ uint256(size + 1));
//! ```
//!
//! Soundness: the old root fixes every left sibling (under collision resistance), and those are
//! all the non-zero nodes the new path needs, so `newRoot` is the root of the old leaves followed
//! by `leaf`. Cost: 66 `hash_pair`s plus 2 size mix-ins.
//!
//! The proof structs derive `serde` so they can be shipped between components.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::panic))]

use std::sync::OnceLock;

use alloy_primitives::{keccak256, B256};

/// Height of the tree: the raw root is the node at level 32.
pub const TREE_DEPTH: usize = 32;

/// Capacity of the tree: `2^32` leaves.
pub const MAX_LEAVES: u64 = 1 << 32;

/// Errors from building the tree, producing proofs or verifying them.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    /// A zero leaf was appended, or a proof claims a zero leaf; leaves must be non-zero.
    #[error("zero leaf at index {index} is not allowed")]
    ZeroLeaf {
        /// Index the leaf would have had (or claims to have).
        index: u64,
    },
    /// The tree already holds [`MAX_LEAVES`] leaves.
    #[error("message tree is full ({len} leaves)")]
    TreeFull {
        /// Number of leaves in the tree.
        len: u64,
    },
    /// A leaf index that is not below the size it is proved against.
    #[error("leaf index {index} out of range for size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size the index must be below.
        size: u64,
    },
    /// A size larger than the number of leaves the tree holds.
    #[error("size {size} exceeds the tree's {len} leaves")]
    SizeOutOfRange {
        /// The requested size.
        size: u64,
        /// Number of leaves in the tree.
        len: u64,
    },
    /// A size larger than the tree's capacity [`MAX_LEAVES`].
    #[error("size {size} exceeds the tree capacity 2^32")]
    SizeExceedsCapacity {
        /// The offending size.
        size: u64,
    },
    /// A proof whose hash list has the wrong length.
    #[error("proof has {got} hashes, expected {expected}")]
    BadProofLength {
        /// Number of hashes the proof format requires.
        expected: usize,
        /// Number of hashes the proof carries.
        got: usize,
    },
    /// A sibling whose leaves all lie at or beyond the size is not the zero hash of its level.
    #[error("sibling at level {level} lies beyond the tree size but is not the zero hash")]
    NonZeroPadding {
        /// Level of the offending sibling.
        level: usize,
    },
    /// The root recomputed from a proof differs from the claimed root (for extension proofs:
    /// the new root).
    #[error("root mismatch: expected {expected}, computed {computed}")]
    RootMismatch {
        /// The root the proof was checked against.
        expected: B256,
        /// The root recomputed from the proof.
        computed: B256,
    },
    /// The old root recomputed from an extension proof differs from the claimed old root.
    #[error("old root mismatch: expected {expected}, computed {computed}")]
    OldRootMismatch {
        /// The old root the proof was checked against.
        expected: B256,
        /// The old root recomputed from the proof.
        computed: B256,
    },
    /// An append witness whose old root does not match the root it is checked against.
    #[error("append witness is for root {computed}, expected {expected}")]
    AppendRootMismatch {
        /// The root the witness was checked against.
        expected: B256,
        /// The root the witness commits to.
        computed: B256,
    },
    /// An extension whose old size is larger than its new size.
    #[error("old size {old_size} is after new size {new_size}")]
    OldSizeAfterNewSize {
        /// The claimed old size.
        old_size: u64,
        /// The claimed new size.
        new_size: u64,
    },
}

/// Roots of all-empty subtrees: `[0] = B256::ZERO`, `[h + 1] = hash_pair(z[h], z[h])`.
pub fn zero_hashes() -> &'static [B256; TREE_DEPTH + 1] {
    static ZEROS: OnceLock<[B256; TREE_DEPTH + 1]> = OnceLock::new();
    ZEROS.get_or_init(|| {
        let mut z = [B256::ZERO; TREE_DEPTH + 1];
        for h in 0..TREE_DEPTH {
            z[h + 1] = hash_pair(&z[h], &z[h]);
        }
        z
    })
}

/// Hash of an internal node: `keccak256(left ‖ right)` over 64 bytes.
#[inline]
pub fn hash_pair(left: &B256, right: &B256) -> B256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(left.as_slice());
    buf[32..].copy_from_slice(right.as_slice());
    keccak256(buf)
}

/// Committed root from a raw depth-32 root: `keccak256(abi.encode(bytes32 treeRoot, uint256 size))`.
#[inline]
pub fn mix_in_size(tree_root: B256, size: u64) -> B256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(tree_root.as_slice());
    buf[56..].copy_from_slice(&size.to_be_bytes());
    keccak256(buf)
}

/// Committed root of the empty tree: `mix_in_size(zero_hashes()[32], 0)`.
pub fn empty_root() -> B256 {
    mix_in_size(zero_hashes()[TREE_DEPTH], 0)
}

/// `ceil(log2(size))`, with `levels_for(0) = levels_for(1) = 0`.
#[inline]
fn levels_for(size: u64) -> usize {
    if size <= 1 {
        0
    } else {
        (u64::BITS - (size - 1).leading_zeros()) as usize
    }
}

/// Whether the sibling at level `h` of the path of leaf `index` lies wholly at or beyond `size`.
/// Requires `index < size <= MAX_LEAVES` and `h < TREE_DEPTH` (no overflow then).
#[inline]
fn sibling_beyond(index: u64, h: usize, size: u64) -> bool {
    (((index >> h) ^ 1) << h) >= size
}

fn check_capacity(size: u64) -> Result<(), MerkleError> {
    if size > MAX_LEAVES {
        Err(MerkleError::SizeExceedsCapacity { size })
    } else {
        Ok(())
    }
}

/// Append-only Merkle tree of message hashes; see the [crate docs](crate) for the root definition.
///
/// Holds every leaf (needed for proofs), every complete internal node (so historical roots and
/// proofs are O(depth)), and the 32-node frontier used for appends and the current root. All of
/// it is a function of the leaves, so two trees are equal iff they hold the same leaves.
#[derive(Clone, Debug, Default)]
pub struct MessageTree {
    /// The leaves, in append order.
    leaves: Vec<B256>,
    /// `nodes[h - 1][j]` = node at level `h` (1..=32), position `j`, for every complete node
    /// (`(j + 1) << h <= len`).
    nodes: Vec<Vec<B256>>,
    /// `frontier[h]` = the complete node at level `h`, position `(len >> h) - 1` if bit `h` of
    /// `len` is set, else `B256::ZERO` (kept canonical so `PartialEq` is meaningful).
    frontier: [B256; TREE_DEPTH],
    /// The current root, once computed; reset by every change.
    root_cache: std::sync::OnceLock<B256>,
}

impl PartialEq for MessageTree {
    fn eq(&self, other: &Self) -> bool {
        // everything else is a function of the leaves
        self.leaves == other.leaves
    }
}

impl Eq for MessageTree {}

impl MessageTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree holding `leaves` in order; fails on the first zero leaf or when the tree fills up.
    pub fn from_leaves(leaves: impl IntoIterator<Item = B256>) -> Result<Self, MerkleError> {
        let mut tree = Self::new();
        for leaf in leaves {
            tree.append(leaf)?;
        }
        Ok(tree)
    }

    /// Appends `leaf` and returns its index. A zero leaf ([`MerkleError::ZeroLeaf`]) or a full
    /// tree ([`MerkleError::TreeFull`]) is an error and leaves the tree unchanged.
    pub fn append(&mut self, leaf: B256) -> Result<u64, MerkleError> {
        let index = self.len();
        if index >= MAX_LEAVES {
            return Err(MerkleError::TreeFull { len: index });
        }
        if leaf == B256::ZERO {
            return Err(MerkleError::ZeroLeaf { index });
        }
        self.leaves.push(leaf);
        self.root_cache = std::sync::OnceLock::new();
        let size = index + 1;
        let mut node = leaf;
        for h in 0..TREE_DEPTH {
            if (size >> h) & 1 == 1 {
                self.frontier[h] = node;
                return Ok(index);
            }
            node = hash_pair(&self.frontier[h], &node);
            self.frontier[h] = B256::ZERO;
            self.push_node(h + 1, node);
        }
        // Only reached when the tree became full: `node` is the complete level-32 root.
        Ok(index)
    }

    fn push_node(&mut self, level: usize, node: B256) {
        if self.nodes.len() < level {
            self.nodes.resize_with(level, Vec::new);
        }
        self.nodes[level - 1].push(node);
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// Current committed root (`root_at(len)`), computed from the frontier in 33 hashes.
    pub fn root(&self) -> B256 {
        *self.root_cache.get_or_init(|| self.compute_root())
    }

    fn compute_root(&self) -> B256 {
        let size = self.len();
        if size == MAX_LEAVES {
            return mix_in_size(self.complete_node(TREE_DEPTH, 0), size);
        }
        let mut node = B256::ZERO;
        for (h, (left, zero)) in self.frontier.iter().zip(zero_hashes()).enumerate() {
            node = if (size >> h) & 1 == 1 {
                hash_pair(left, &node)
            } else {
                hash_pair(&node, zero)
            };
        }
        mix_in_size(node, size)
    }

    /// Committed root of the first `size` leaves, for any `size <= len`.
    pub fn root_at(&self, size: u64) -> Result<B256, MerkleError> {
        self.check_size(size)?;
        Ok(mix_in_size(self.node(TREE_DEPTH, 0, size), size))
    }

    /// Leaf number `index`, if present.
    pub fn leaf(&self, index: u64) -> Option<B256> {
        let index = usize::try_from(index).ok()?;
        self.leaves.get(index).copied()
    }

    /// All leaves, in append order.
    pub fn leaves(&self) -> &[B256] {
        &self.leaves
    }

    /// Drops every leaf at index `>= size` (used for reverts). Fails if `size > len`.
    pub fn truncate(&mut self, size: u64) -> Result<(), MerkleError> {
        self.check_size(size)?;
        self.leaves.truncate(size as usize);
        self.root_cache = std::sync::OnceLock::new();
        for (i, level) in self.nodes.iter_mut().enumerate() {
            level.truncate((size >> (i + 1)) as usize);
        }
        while self.nodes.last().is_some_and(Vec::is_empty) {
            self.nodes.pop();
        }
        for h in 0..TREE_DEPTH {
            self.frontier[h] = if (size >> h) & 1 == 1 {
                self.complete_node(h, (size >> h) - 1)
            } else {
                B256::ZERO
            };
        }
        Ok(())
    }

    /// Proof that leaf `index` is in the tree committed by `root_at(size)`; requires
    /// `index < size <= len`. See the [crate docs](crate) for the format.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<InclusionProof, MerkleError> {
        self.check_size(size)?;
        if index >= size {
            return Err(MerkleError::IndexOutOfRange { index, size });
        }
        let siblings = (0..levels_for(size))
            .map(|h| self.node(h, (index >> h) ^ 1, size))
            .collect();
        Ok(InclusionProof {
            index,
            size,
            siblings,
        })
    }

    /// Proof that the tree committed by `root_at(old_size)` is a prefix of the one committed by
    /// `root_at(new_size)`; requires `old_size <= new_size <= len`. See the [crate docs](crate)
    /// for the format.
    pub fn extension_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<ExtensionProof, MerkleError> {
        self.check_size(new_size)?;
        if old_size > new_size {
            return Err(MerkleError::OldSizeAfterNewSize { old_size, new_size });
        }
        let mut hashes = Vec::new();
        if old_size != 0 && old_size != new_size {
            let k = old_size - 1;
            let depth = levels_for(new_size);
            hashes.reserve(1 + depth);
            hashes.push(self.complete_node(0, k));
            hashes.extend((0..depth).map(|h| self.node(h, (k >> h) ^ 1, new_size)));
        }
        Ok(ExtensionProof {
            old_size,
            new_size,
            hashes,
        })
    }

    /// The witness to append one leaf to this tree statelessly (its frontier); see
    /// [`AppendWitness`].
    pub fn append_witness(&self) -> AppendWitness {
        let size = self.len();
        let left_siblings = self
            .frontier
            .iter()
            .enumerate()
            .filter(|(h, _)| (size >> h) & 1 == 1)
            .map(|(_, node)| *node)
            .collect();
        AppendWitness {
            size,
            left_siblings,
        }
    }

    fn check_size(&self, size: u64) -> Result<(), MerkleError> {
        let len = self.len();
        if size > len {
            Err(MerkleError::SizeOutOfRange { size, len })
        } else {
            Ok(())
        }
    }

    /// A complete node (`(pos + 1) << level <= len`), read from the caches.
    fn complete_node(&self, level: usize, pos: u64) -> B256 {
        let pos = pos as usize;
        let node = if level == 0 {
            self.leaves.get(pos)
        } else {
            self.nodes.get(level - 1).and_then(|l| l.get(pos))
        };
        // Callers only ask for complete nodes, which are always cached.
        debug_assert!(node.is_some(), "node ({level}, {pos}) not cached");
        node.copied().unwrap_or_default()
    }

    /// Node at `level`, position `pos` of the tree of the first `size <= len` leaves.
    /// Costs at most `level` hashes (at most one partial node per level).
    fn node(&self, level: usize, pos: u64, size: u64) -> B256 {
        let first = pos << level;
        if first >= size {
            zero_hashes()[level]
        } else if first + (1u64 << level) <= size {
            self.complete_node(level, pos)
        } else {
            // Partial node: level >= 1 because a level-0 node is either complete or zero.
            let left = self.node(level - 1, 2 * pos, size);
            let right = self.node(level - 1, 2 * pos + 1, size);
            hash_pair(&left, &right)
        }
    }
}

/// Proof that a leaf is at `index` in the tree committed by `root_at(size)`.
///
/// `siblings[h]`, for `h in 0..ceil(log2(size))`, is the sibling at level `h` of the leaf's path
/// (siblings wholly beyond `size` are the zero hash of their level); see the
/// [crate docs](crate).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InclusionProof {
    /// Index of the proved leaf.
    pub index: u64,
    /// Tree size the proof is against (the root is `root_at(size)`).
    pub size: u64,
    /// Siblings from level 0 upwards; exactly `ceil(log2(size))` of them.
    pub siblings: Vec<B256>,
}

/// Checks that `leaf` is at `proof.index` in the tree whose committed root is `root` and whose
/// size is `proof.size`. Never panics.
pub fn verify_inclusion(root: B256, leaf: B256, proof: &InclusionProof) -> Result<(), MerkleError> {
    let InclusionProof {
        index,
        size,
        ref siblings,
    } = *proof;
    check_capacity(size)?;
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    if leaf == B256::ZERO {
        return Err(MerkleError::ZeroLeaf { index });
    }
    let depth = levels_for(size);
    if siblings.len() != depth {
        return Err(MerkleError::BadProofLength {
            expected: depth,
            got: siblings.len(),
        });
    }
    let mut node = leaf;
    for (h, zero) in zero_hashes().iter().take(TREE_DEPTH).enumerate() {
        let sib = siblings.get(h).unwrap_or(zero);
        if sibling_beyond(index, h, size) && sib != zero {
            return Err(MerkleError::NonZeroPadding { level: h });
        }
        node = if (index >> h) & 1 == 1 {
            hash_pair(sib, &node)
        } else {
            hash_pair(&node, sib)
        };
    }
    let computed = mix_in_size(node, size);
    if computed != root {
        return Err(MerkleError::RootMismatch {
            expected: root,
            computed,
        });
    }
    Ok(())
}

/// Proof that the tree of `old_size` leaves is a prefix of the tree of `new_size` leaves.
///
/// For `0 < old_size < new_size`, `hashes = [leaf(old_size - 1)] ++ siblings`, one sibling per
/// level `h in 0..ceil(log2(new_size))` on the path of leaf `old_size - 1`: left siblings as in
/// both trees, right siblings as in the new tree. Otherwise `hashes` is empty. See the
/// [crate docs](crate).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExtensionProof {
    /// Size of the old (prefix) tree.
    pub old_size: u64,
    /// Size of the new tree.
    pub new_size: u64,
    /// The last old leaf followed by the path siblings; empty if `old_size` is 0 or equals
    /// `new_size`.
    pub hashes: Vec<B256>,
}

/// Checks that the tree committed by `old_root` (with `proof.old_size` leaves) is a prefix of the
/// tree committed by `new_root` (with `proof.new_size` leaves). Never panics.
pub fn verify_extension(
    old_root: B256,
    new_root: B256,
    proof: &ExtensionProof,
) -> Result<(), MerkleError> {
    let ExtensionProof {
        old_size,
        new_size,
        ref hashes,
    } = *proof;
    check_capacity(old_size)?;
    check_capacity(new_size)?;
    if old_size > new_size {
        return Err(MerkleError::OldSizeAfterNewSize { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        if !hashes.is_empty() {
            return Err(MerkleError::BadProofLength {
                expected: 0,
                got: hashes.len(),
            });
        }
        let expected_old = if old_size == 0 {
            empty_root()
        } else {
            new_root
        };
        if old_root != expected_old {
            return Err(MerkleError::OldRootMismatch {
                expected: old_root,
                computed: expected_old,
            });
        }
        return Ok(());
    }

    let k = old_size - 1;
    let depth = levels_for(new_size);
    let Some((&leaf, siblings)) = hashes.split_first().filter(|(_, s)| s.len() == depth) else {
        return Err(MerkleError::BadProofLength {
            expected: 1 + depth,
            got: hashes.len(),
        });
    };
    if leaf == B256::ZERO {
        return Err(MerkleError::ZeroLeaf { index: k });
    }
    let mut old_node = leaf;
    let mut new_node = leaf;
    for (h, zero) in zero_hashes().iter().take(TREE_DEPTH).enumerate() {
        match siblings.get(h) {
            Some(sib) if (k >> h) & 1 == 1 => {
                old_node = hash_pair(sib, &old_node);
                new_node = hash_pair(sib, &new_node);
            }
            Some(sib) => {
                if sibling_beyond(k, h, new_size) && sib != zero {
                    return Err(MerkleError::NonZeroPadding { level: h });
                }
                old_node = hash_pair(&old_node, zero);
                new_node = hash_pair(&new_node, sib);
            }
            None => {
                old_node = hash_pair(&old_node, zero);
                new_node = hash_pair(&new_node, zero);
            }
        }
    }
    let computed_old = mix_in_size(old_node, old_size);
    if computed_old != old_root {
        return Err(MerkleError::OldRootMismatch {
            expected: old_root,
            computed: computed_old,
        });
    }
    let computed_new = mix_in_size(new_node, new_size);
    if computed_new != new_root {
        return Err(MerkleError::RootMismatch {
            expected: new_root,
            computed: computed_new,
        });
    }
    Ok(())
}

/// The frontier of a tree of `size` leaves: enough to compute its root and to append to it
/// without the leaves. See the [crate docs](crate#append-witness-appendwitness-verify_append).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppendWitness {
    /// Number of leaves in the tree (the index the next leaf gets).
    pub size: u64,
    /// The left siblings of the path of leaf index `size`, from level 0 upwards: one per set bit
    /// of `size`, exactly `popcount(size)` hashes.
    pub left_siblings: Vec<B256>,
}

impl AppendWitness {
    /// The witness of the empty tree.
    pub fn empty() -> Self {
        Self {
            size: 0,
            left_siblings: Vec::new(),
        }
    }

    fn check(&self) -> Result<(), MerkleError> {
        if self.size >= MAX_LEAVES {
            return Err(MerkleError::TreeFull { len: self.size });
        }
        let expected = self.size.count_ones() as usize;
        if self.left_siblings.len() != expected {
            return Err(MerkleError::BadProofLength {
                expected,
                got: self.left_siblings.len(),
            });
        }
        Ok(())
    }

    /// Raw depth-32 root of the tree with `slot` in leaf slot `size` (assumes [`Self::check`]).
    fn raw_root_with(&self, slot: B256) -> B256 {
        let mut lefts = self.left_siblings.iter();
        let mut node = slot;
        for (h, zero) in zero_hashes().iter().take(TREE_DEPTH).enumerate() {
            let left = if (self.size >> h) & 1 == 1 {
                lefts.next()
            } else {
                None
            };
            node = match left {
                Some(left) => hash_pair(left, &node),
                None => hash_pair(&node, zero),
            };
        }
        node
    }

    /// The committed root `root_at(size)` this witness is for (33 hashes). Fails for a full tree
    /// ([`MerkleError::TreeFull`]) or a sibling count other than `popcount(size)`.
    pub fn root(&self) -> Result<B256, MerkleError> {
        self.check()?;
        Ok(mix_in_size(self.raw_root_with(B256::ZERO), self.size))
    }

    /// The committed root after appending `leaf` (`root_at(size + 1)`), without changing the
    /// witness (33 hashes).
    pub fn root_after(&self, leaf: B256) -> Result<B256, MerkleError> {
        self.check()?;
        if leaf == B256::ZERO {
            return Err(MerkleError::ZeroLeaf { index: self.size });
        }
        Ok(mix_in_size(self.raw_root_with(leaf), self.size + 1))
    }

    /// Appends `leaf`: returns its index and turns `self` into the witness of the grown tree
    /// (at most 32 hashes). On error `self` is unchanged.
    pub fn append(&mut self, leaf: B256) -> Result<u64, MerkleError> {
        self.check()?;
        if leaf == B256::ZERO {
            return Err(MerkleError::ZeroLeaf { index: self.size });
        }
        let index = self.size;
        // Carry `leaf` up through the complete left subtrees, like MessageTree::append.
        let mut node = leaf;
        // The trailing one bits of `index` are its lowest levels, so their siblings come first.
        let consumed = index.trailing_ones() as usize;
        for left in self.left_siblings.iter().take(consumed) {
            node = hash_pair(left, &node);
        }
        let mut next = Vec::with_capacity(self.left_siblings.len() + 1 - consumed);
        next.push(node);
        next.extend_from_slice(self.left_siblings.get(consumed..).unwrap_or_default());
        self.left_siblings = next;
        self.size = index + 1;
        Ok(index)
    }
}

/// Checks `witness` against `old_root` (the committed root of a tree of `witness.size` leaves)
/// and returns the committed root after appending `leaf`. Never panics.
pub fn verify_append(
    old_root: B256,
    witness: &AppendWitness,
    leaf: B256,
) -> Result<B256, MerkleError> {
    let computed = witness.root()?;
    if computed != old_root {
        return Err(MerkleError::AppendRootMismatch {
            expected: old_root,
            computed,
        });
    }
    witness.root_after(leaf)
}

#[cfg(test)]
mod tests;
