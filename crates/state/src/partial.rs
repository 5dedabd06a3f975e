//! A partial sparse Merkle tree: the part of a [`SparseMerkleTree`](crate::SparseMerkleTree)
//! that a set of [`SmtProof`]s reveals, enough to read and write the proven keys and to compute
//! the new root, without the rest of the tree.
//!
//! A [`PartialSmt`] starts from a root alone (the whole tree is one *opaque* hash). Each
//! [`PartialSmt::add_proof`] verifies a proof against the current root and expands the path it
//! proves: internal nodes on the path become known, their off-path children stay opaque hashes
//! (or known-empty for zero siblings), and the node where the proof ends becomes a known leaf or
//! a known empty subtree. Reads and writes of a key then walk the known structure:
//!
//! * a walk that reaches an opaque hash fails with [`PartialSmtError::Unwitnessed`] — a key is
//!   never silently read as absent;
//! * an insert into a known-empty subtree creates a leaf; an insert that meets another known leaf
//!   splits it exactly as the full tree would (compact shape, see the [crate docs](crate));
//! * a removal that would make a lone leaf move up past an opaque sibling (the compact tree
//!   collapses a node whose only other child holds one leaf, and an opaque hash does not say
//!   whether it is one leaf or more) fails with [`PartialSmtError::CannotCollapse`]; prove a key
//!   under that sibling to allow it.
//!
//! Every known node caches its hash, so a write rehashes only its own path and
//! [`PartialSmt::root`] is O(1). For any set of proofs from one tree and any writes to proven
//! keys, the partial root equals the root the full tree would have after the same writes.
//! [`PartialSmt::hash_count`] counts the keccak calls made (65-byte preimages each), for cost
//! accounting.

use alloy_primitives::B256;

use crate::{
    bit, common_prefix_bits, internal_hash, leaf_hash, verify_proof, SmtProof, StateError, KEY_BITS,
};

/// Why a [`PartialSmt`] operation failed. A failed operation leaves the tree unchanged.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PartialSmtError {
    /// A proof does not verify against the current root.
    #[error("proof for key {key} does not verify: {source}")]
    BadProof {
        /// The key of the proof.
        key: B256,
        /// Why verification failed.
        source: Box<StateError>,
    },
    /// A proof that verifies but contradicts the already known structure (only possible with a
    /// keccak collision, or proofs of different trees with equal roots).
    #[error("proof for key {key} contradicts the known part of the tree")]
    Inconsistent {
        /// The key of the proof.
        key: B256,
    },
    /// The key's path runs into a part of the tree no proof revealed.
    #[error("key {key} lies in an unwitnessed part of the tree")]
    Unwitnessed {
        /// The key.
        key: B256,
    },
    /// Removing the key would collapse its subtree onto an opaque sibling.
    #[error("removing key {key} needs the shape of an unwitnessed sibling subtree")]
    CannotCollapse {
        /// The key.
        key: B256,
    },
}

/// A node of the partial tree.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    /// A subtree known to be empty (hash zero).
    Empty,
    /// A subtree known to hold exactly this one leaf.
    Leaf {
        /// Full key.
        key: B256,
        /// Value (never zero).
        value: B256,
        /// `leaf_hash(key, value)`.
        hash: B256,
    },
    /// A subtree with two or more leaves, whose children are known (possibly opaque).
    Internal {
        /// `internal_hash(left, right)`.
        hash: B256,
        /// `[left, right]`.
        children: Box<[Node; 2]>,
    },
    /// A non-empty subtree known only by its hash.
    Opaque(B256),
}

impl Node {
    fn from_hash(hash: B256) -> Self {
        if hash.is_zero() {
            Node::Empty
        } else {
            Node::Opaque(hash)
        }
    }

    fn hash(&self) -> B256 {
        match self {
            Node::Empty => B256::ZERO,
            Node::Leaf { hash, .. } | Node::Internal { hash, .. } | Node::Opaque(hash) => *hash,
        }
    }
}

/// The part of a sparse Merkle tree revealed by proofs; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialSmt {
    root: Node,
    hashes: u64,
}

impl PartialSmt {
    /// A partial tree knowing only its root (nothing is readable until proofs are added).
    pub fn new(root: B256) -> Self {
        Self {
            root: Node::from_hash(root),
            hashes: 0,
        }
    }

    /// Builds a partial tree from `root` and proofs `(key, value, proof)` (value `None` =
    /// absent), each verified against `root`.
    pub fn from_proofs<'a>(
        root: B256,
        proofs: impl IntoIterator<Item = (B256, Option<B256>, &'a SmtProof)>,
    ) -> Result<Self, PartialSmtError> {
        let mut tree = Self::new(root);
        for (key, value, proof) in proofs {
            tree.add_proof(key, value, proof)?;
        }
        Ok(tree)
    }

    /// The current root hash. O(1).
    pub fn root(&self) -> B256 {
        self.root.hash()
    }

    /// Number of keccak calls made so far (proof verification and rehashing), each over a
    /// 65-byte preimage.
    pub fn hash_count(&self) -> u64 {
        self.hashes
    }

    /// Verifies `proof` (that `key ↦ value`, or `key` absent for `None`) against the current
    /// root and reveals its path. Costs `siblings + 1` hashes (`siblings` if the path ends
    /// empty).
    pub fn add_proof(
        &mut self,
        key: B256,
        value: Option<B256>,
        proof: &SmtProof,
    ) -> Result<(), PartialSmtError> {
        verify_proof(self.root(), key, value, proof).map_err(|source| {
            PartialSmtError::BadProof {
                key,
                source: Box::new(source),
            }
        })?;
        self.hashes += proof.siblings.len() as u64 + u64::from(proof.leaf.is_some());
        // Hashes of the path nodes, path[d] at depth d (path[0] is the root).
        let depth = proof.siblings.len();
        let end = match proof.leaf {
            Some((k, v)) => Node::Leaf {
                key: k,
                value: v,
                hash: leaf_hash(&k, &v),
            },
            None => Node::Empty,
        };
        let mut path = vec![B256::ZERO; depth + 1];
        let mut h = end.hash();
        path[depth] = h;
        for (d, sibling) in (0..KEY_BITS).zip(proof.siblings.iter()).rev() {
            h = if bit(&key, d) {
                internal_hash(sibling, &h)
            } else {
                internal_hash(&h, sibling)
            };
            path[usize::from(d)] = h;
        }
        // Check the whole merge first (read-only) so that a conflict changes nothing.
        let mut known = &self.root;
        let mut reached_end = true;
        for d in (0..KEY_BITS).take(depth) {
            match known {
                Node::Opaque(_) => {
                    reached_end = false;
                    break;
                }
                Node::Internal { children, .. } => known = &children[usize::from(bit(&key, d))],
                Node::Empty | Node::Leaf { .. } => {
                    return Err(PartialSmtError::Inconsistent { key })
                }
            }
        }
        if reached_end {
            let agrees = match (known, &end) {
                (Node::Opaque(_), _) | (Node::Empty, Node::Empty) => true,
                (
                    Node::Leaf {
                        key: a, value: x, ..
                    },
                    Node::Leaf {
                        key: b, value: y, ..
                    },
                ) => a == b && x == y,
                _ => false,
            };
            if !agrees {
                return Err(PartialSmtError::Inconsistent { key });
            }
        }
        // Expand the path; nothing below can fail after the check.
        let mut node = &mut self.root;
        for (d, sibling) in (0..KEY_BITS).zip(proof.siblings.iter()) {
            let side = usize::from(bit(&key, d));
            if let Node::Opaque(hash) = node {
                let mut children = [Node::Empty, Node::Empty];
                children[side] = Node::Opaque(path[usize::from(d) + 1]);
                children[1 - side] = Node::from_hash(*sibling);
                *node = Node::Internal {
                    hash: *hash,
                    children: Box::new(children),
                };
            }
            node = match node {
                Node::Internal { children, .. } => &mut children[side],
                // Excluded by the check above.
                _ => return Err(PartialSmtError::Inconsistent { key }),
            };
        }
        if let Node::Opaque(_) = node {
            *node = end;
        }
        Ok(())
    }

    /// The value of `key` (`None` = absent); fails if the key's path is not witnessed.
    pub fn get(&self, key: &B256) -> Result<Option<B256>, PartialSmtError> {
        let mut node = &self.root;
        let mut depth = 0u16;
        loop {
            match node {
                Node::Empty => return Ok(None),
                Node::Leaf { key: k, value, .. } => {
                    return Ok((k == key).then_some(*value));
                }
                Node::Opaque(_) => return Err(PartialSmtError::Unwitnessed { key: *key }),
                Node::Internal { children, .. } => {
                    node = &children[usize::from(bit(key, depth))];
                    depth += 1;
                }
            }
        }
    }

    /// Sets `key` to `value` (zero removes, as in the full tree) and returns the new root.
    pub fn insert(&mut self, key: B256, value: B256) -> Result<B256, PartialSmtError> {
        if value.is_zero() {
            return self.remove(&key);
        }
        // Check the path first: inserting cannot fail after that.
        self.check_path(&key)?;
        let mut hashes = 0;
        insert_at(&mut self.root, 0, key, value, &mut hashes);
        self.hashes += hashes;
        Ok(self.root())
    }

    /// Removes `key` (a no-op if it is known absent) and returns the new root.
    pub fn remove(&mut self, key: &B256) -> Result<B256, PartialSmtError> {
        self.check_path(key)?;
        let backup = self.root.clone();
        let mut hashes = 0;
        match remove_at(&mut self.root, 0, key, &mut hashes) {
            Ok(_) => {
                self.hashes += hashes;
                Ok(self.root())
            }
            Err(e) => {
                self.root = backup;
                Err(e)
            }
        }
    }

    fn check_path(&self, key: &B256) -> Result<(), PartialSmtError> {
        self.get(key).map(|_| ())
    }
}

/// Inserts into a subtree whose path to `key` is known (checked by the caller).
fn insert_at(node: &mut Node, depth: u16, key: B256, value: B256, hashes: &mut u64) {
    match node {
        Node::Empty | Node::Opaque(_) => {
            // Opaque is excluded by the caller's path check; treat it like Empty defensively.
            *hashes += 1;
            *node = Node::Leaf {
                key,
                value,
                hash: leaf_hash(&key, &value),
            };
        }
        Node::Leaf {
            key: k,
            value: v,
            hash,
        } => {
            if *k == key {
                if *v != value {
                    *hashes += 1;
                    *v = value;
                    *hash = leaf_hash(&key, &value);
                }
                return;
            }
            let other = node.clone();
            *hashes += 1;
            let new_leaf = Node::Leaf {
                key,
                value,
                hash: leaf_hash(&key, &value),
            };
            *node = split(depth, other, new_leaf, key, hashes);
        }
        Node::Internal { hash, children } => {
            let side = usize::from(bit(&key, depth));
            insert_at(&mut children[side], depth + 1, key, value, hashes);
            *hashes += 1;
            *hash = internal_hash(&children[0].hash(), &children[1].hash());
        }
    }
}

/// The subtree at `depth` holding two leaves `a` (existing) and `b` (new, key `b_key`).
fn split(depth: u16, a: Node, b: Node, b_key: B256, hashes: &mut u64) -> Node {
    let a_key = match &a {
        Node::Leaf { key, .. } => *key,
        _ => return a, // unreachable: only called with leaves
    };
    // Distinct keys diverge before bit 256.
    let diverge = common_prefix_bits(&a_key, &b_key).min(usize::from(KEY_BITS) - 1) as u16;
    let mut children = [Node::Empty, Node::Empty];
    let b_side = usize::from(bit(&b_key, diverge));
    children[b_side] = b;
    children[1 - b_side] = a;
    *hashes += 1;
    let mut node = Node::Internal {
        hash: internal_hash(&children[0].hash(), &children[1].hash()),
        children: Box::new(children),
    };
    let mut d = diverge;
    while d > depth {
        d -= 1;
        let side = usize::from(bit(&b_key, d));
        let mut children = [Node::Empty, Node::Empty];
        children[side] = node;
        *hashes += 1;
        node = Node::Internal {
            hash: internal_hash(&children[0].hash(), &children[1].hash()),
            children: Box::new(children),
        };
    }
    node
}

/// Removes `key` from a subtree whose path to `key` is known; returns whether anything changed.
/// On error the subtree may be half-updated: the caller restores a backup.
fn remove_at(
    node: &mut Node,
    depth: u16,
    key: &B256,
    hashes: &mut u64,
) -> Result<bool, PartialSmtError> {
    match node {
        Node::Empty => Ok(false),
        Node::Leaf { key: k, .. } => {
            if k == key {
                *node = Node::Empty;
                Ok(true)
            } else {
                Ok(false)
            }
        }
        Node::Opaque(_) => Err(PartialSmtError::Unwitnessed { key: *key }),
        Node::Internal { hash, children } => {
            let side = usize::from(bit(key, depth));
            if !remove_at(&mut children[side], depth + 1, key, hashes)? {
                return Ok(false);
            }
            // Compaction: a node left with at most one leaf below it is replaced by that leaf.
            let replacement = match (&children[side], &children[1 - side]) {
                (Node::Empty, Node::Empty) => Some(Node::Empty),
                (Node::Empty, Node::Leaf { .. }) => Some(children[1 - side].clone()),
                (Node::Leaf { .. }, Node::Empty) => Some(children[side].clone()),
                (Node::Empty, Node::Opaque(_)) => {
                    return Err(PartialSmtError::CannotCollapse { key: *key })
                }
                _ => None,
            };
            match replacement {
                Some(r) => *node = r,
                None => {
                    *hashes += 1;
                    *hash = internal_hash(&children[0].hash(), &children[1].hash());
                }
            }
            Ok(true)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
#[path = "partial_tests.rs"]
mod tests;
