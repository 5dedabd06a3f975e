//! The re-execution backend: a proof is the data of the whole subtree (every leaf statement and
//! every node's previous-previous hash), and verifying it recomputes every keccak hash and every
//! import settlement. Sound and simple; its size and verification time grow with the subtree.

use std::sync::Arc;

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

use crate::tree::{leaf_statement, node_statement};
use crate::{
    AggregatorError, KeccakHasher, LeafInput, NodeHashes, NodeId, NodeStatement, TreeProver,
    TreeShape, TreeSnapshot, TreeVerifier,
};

/// A re-execution "proof": the subtree's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReexecProof {
    /// A chain's checkpoint statement.
    Leaf(LeafInput),
    /// A node: its children's proofs and its hash two checkpoints back.
    Node {
        /// The node.
        node: NodeId,
        /// Its hash at `i-2`.
        prev_prev_hash: B256,
        /// Left child.
        left: Arc<ReexecProof>,
        /// Right child, if the node has one.
        right: Option<Arc<ReexecProof>>,
    },
}

impl ReexecProof {
    /// The checkpoint statements under this proof, left to right.
    pub fn leaves(&self) -> Vec<&LeafInput> {
        match self {
            ReexecProof::Leaf(leaf) => vec![leaf],
            ReexecProof::Node { left, right, .. } => {
                let mut out = left.leaves();
                if let Some(r) = right {
                    out.extend(r.leaves());
                }
                out
            }
        }
    }

    /// The position this proof claims to prove.
    pub fn node(&self) -> NodeId {
        match self {
            ReexecProof::Leaf(leaf) => NodeId::new(0, leaf.chain),
            ReexecProof::Node { node, .. } => *node,
        }
    }
}

/// The re-execution backend over one tree shape (keccak node hashes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReexecBackend {
    shape: TreeShape,
}

impl ReexecBackend {
    /// The backend for trees of `shape`.
    pub fn new(shape: TreeShape) -> Self {
        Self { shape }
    }

    fn statement(&self, proof: &ReexecProof) -> Result<NodeStatement, AggregatorError> {
        match proof {
            ReexecProof::Leaf(leaf) => leaf_statement(&KeccakHasher, &self.shape, leaf),
            ReexecProof::Node {
                node,
                prev_prev_hash,
                left,
                right,
            } => {
                // bound the recursion before descending: children sit one level lower
                for child in std::iter::once(left.as_ref()).chain(right.as_deref()) {
                    let got = child.node();
                    if node.level > self.shape.depth()
                        || got.level.checked_add(1) != Some(node.level)
                    {
                        return Err(AggregatorError::WrongChild {
                            level: node.level.saturating_sub(1),
                            index: node.index.saturating_mul(2),
                            got_level: got.level,
                            got_index: got.index,
                        });
                    }
                }
                let l = self.statement(left)?;
                let r = right.as_deref().map(|r| self.statement(r)).transpose()?;
                node_statement(
                    &KeccakHasher,
                    &self.shape,
                    *node,
                    &l,
                    r.as_ref(),
                    *prev_prev_hash,
                )
            }
        }
    }

    /// The tree snapshot held by a root proof: every chain's block hash and every node's
    /// `(prev, hash)`, recomputed (what a new aggregator resumes from, see
    /// [`crate::AggregatorState::resume`]).
    pub fn snapshot(&self, root: &ReexecProof) -> Result<TreeSnapshot, AggregatorError> {
        let statement = self.statement(root)?;
        if statement.node != self.shape.root() {
            return Err(AggregatorError::SnapshotRefused {
                reason: "not a root proof".into(),
            });
        }
        let mut snapshot = TreeSnapshot {
            checkpoint: statement.checkpoint,
            block_hashes: vec![B256::ZERO; self.shape.chains() as usize],
            nodes: (1..=self.shape.depth())
                .map(|l| vec![NodeHashes::default(); self.shape.nodes_at(l) as usize])
                .collect(),
        };
        self.collect(root, &mut snapshot)?;
        Ok(snapshot)
    }

    fn collect(
        &self,
        proof: &ReexecProof,
        snapshot: &mut TreeSnapshot,
    ) -> Result<(), AggregatorError> {
        match proof {
            ReexecProof::Leaf(leaf) => {
                if let Some(slot) = snapshot.block_hashes.get_mut(leaf.chain as usize) {
                    *slot = leaf.block_hash;
                }
            }
            ReexecProof::Node {
                node, left, right, ..
            } => {
                let s = self.statement(proof)?;
                if let Some(slot) = snapshot
                    .nodes
                    .get_mut(usize::from(node.level) - 1)
                    .and_then(|l| l.get_mut(node.index as usize))
                {
                    *slot = NodeHashes {
                        prev: s.prev_hash,
                        hash: s.hash,
                    };
                }
                self.collect(left, snapshot)?;
                if let Some(r) = right {
                    self.collect(r, snapshot)?;
                }
            }
        }
        Ok(())
    }
}

impl TreeVerifier for ReexecBackend {
    type Proof = Arc<ReexecProof>;
    type Hasher = KeccakHasher;

    fn shape(&self) -> TreeShape {
        self.shape
    }
    fn hasher(&self) -> KeccakHasher {
        KeccakHasher
    }
    fn verify(&self, proof: &Self::Proof) -> Result<NodeStatement, AggregatorError> {
        self.statement(proof)
    }
    fn proof_size_bytes(&self, proof: &Self::Proof) -> usize {
        postcard::to_allocvec(proof.as_ref()).map_or(0, |bytes| bytes.len())
    }
}

impl TreeProver for ReexecBackend {
    fn prove_leaf(&self, leaf: &LeafInput) -> Result<Self::Proof, AggregatorError> {
        leaf_statement(&KeccakHasher, &self.shape, leaf)?;
        Ok(Arc::new(ReexecProof::Leaf(leaf.clone())))
    }

    fn prove_node(
        &self,
        node: NodeId,
        left: &Self::Proof,
        right: Option<&Self::Proof>,
        prev_prev_hash: B256,
    ) -> Result<Self::Proof, AggregatorError> {
        let proof = ReexecProof::Node {
            node,
            prev_prev_hash,
            left: Arc::clone(left),
            right: right.map(Arc::clone),
        };
        // a node "verifies its children": the whole subtree is recomputed
        self.statement(&proof)?;
        Ok(Arc::new(proof))
    }
}
