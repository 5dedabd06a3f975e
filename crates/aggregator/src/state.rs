//! The aggregator's state machine (checkpoint in, proofs out), the settlement layer's root chain,
//! and the emergency exit.

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

use crate::tree::{leaf_statement, node_statement};
use crate::{
    AggregatorError, ChainIndex, Checkpoint, LeafInput, NodeId, NodeStatement, TreeHasher,
    TreeProver, TreeShape, TreeVerifier, MAX_CHECKPOINT,
};

/// A node's hashes at one checkpoint `i`: at `i-1` and at `i`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeHashes {
    /// Hash at `i-1` (zero at genesis).
    pub prev: B256,
    /// Hash at `i`.
    pub hash: B256,
}

/// Everything needed to continue a tree after checkpoint `checkpoint`: each chain's block hash
/// there and each node's `(prev, hash)` there. Published with every checkpoint, so another
/// aggregator can take over.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TreeSnapshot {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Block hash of each chain, in chain order.
    pub block_hashes: Vec<B256>,
    /// `nodes[l - 1][k]`: hashes of node `(l, k)`, levels `1..=depth`.
    pub nodes: Vec<Vec<NodeHashes>>,
}

/// The aggregator: the last checkpoint's tree, from which the next one is proven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregatorState {
    shape: TreeShape,
    snapshot: TreeSnapshot,
}

/// The proofs of one checkpoint.
#[derive(Debug, Clone)]
pub struct CheckpointProofs<P> {
    /// The root's statement.
    pub root: NodeStatement,
    /// Leaf proofs, in chain order.
    pub leaves: Vec<P>,
    /// `levels[l - 1][k]`: proof of node `(l, k)`; the last level holds the root proof alone.
    pub levels: Vec<Vec<P>>,
}

impl<P> CheckpointProofs<P> {
    /// The root proof (what the settlement layer verifies).
    pub fn root_proof(&self) -> Option<&P> {
        self.levels.last().and_then(|l| l.first())
    }
}

fn shape_matches(expected: &TreeShape, got: &TreeShape) -> Result<(), AggregatorError> {
    if expected == got {
        Ok(())
    } else {
        Err(AggregatorError::ShapeMismatch {
            expected: expected.chains(),
            got: got.chains(),
        })
    }
}

fn node_slot(nodes: &[Vec<NodeHashes>], node: NodeId) -> Option<NodeHashes> {
    nodes
        .get(usize::from(node.level).checked_sub(1)?)?
        .get(node.index as usize)
        .copied()
}

/// Hashes of the children of `node` at the snapshot's checkpoint.
fn child_hashes<H: TreeHasher>(
    hasher: &H,
    shape: &TreeShape,
    snapshot: &TreeSnapshot,
    node: NodeId,
) -> Option<(B256, Option<B256>)> {
    let child = |offset: u32| -> Option<B256> {
        let index = node.index * 2 + offset;
        if node.level == 1 {
            let block = snapshot.block_hashes.get(index as usize)?;
            Some(hasher.leaf_hash(index, *block))
        } else {
            Some(node_slot(&snapshot.nodes, NodeId::new(node.level - 1, index))?.hash)
        }
    };
    let left = child(0)?;
    let right = if shape.has_right(node) {
        Some(child(1)?)
    } else {
        None
    };
    Some((left, right))
}

impl AggregatorState {
    /// The tree at checkpoint 0 from the chains' genesis block hashes (every node's previous hash
    /// is zero).
    pub fn genesis<H: TreeHasher>(
        hasher: &H,
        shape: TreeShape,
        genesis_block_hashes: &[B256],
    ) -> Result<Self, AggregatorError> {
        if genesis_block_hashes.len() != shape.chains() as usize {
            return Err(AggregatorError::WrongLeaves {
                expected: shape.chains() as usize,
                got: genesis_block_hashes.len(),
            });
        }
        let mut snapshot = TreeSnapshot {
            checkpoint: 0,
            block_hashes: genesis_block_hashes.to_vec(),
            nodes: Vec::new(),
        };
        for level in 1..=shape.depth() {
            let mut row = Vec::new();
            for index in 0..shape.nodes_at(level) {
                let node = NodeId::new(level, index);
                let (left, right) = child_hashes(hasher, &shape, &snapshot, node).ok_or(
                    AggregatorError::NoSuchNode {
                        level,
                        index,
                        chains: shape.chains(),
                    },
                )?;
                let hash = hasher.node_hash(node, left, right, B256::ZERO)?;
                row.push(NodeHashes {
                    prev: B256::ZERO,
                    hash,
                });
            }
            snapshot.nodes.push(row);
        }
        Ok(Self { shape, snapshot })
    }

    /// A new aggregator takes over from the last accepted root: `snapshot` (the last tree's
    /// block and node hashes) is accepted only if every node hash recomputes from its children
    /// and its previous hash, and the root's equals the one `roots` accepted last.
    pub fn resume<H: TreeHasher>(
        hasher: &H,
        roots: &RootChain,
        snapshot: TreeSnapshot,
    ) -> Result<Self, AggregatorError> {
        let shape = roots.shape;
        let refuse = |reason: String| AggregatorError::SnapshotRefused { reason };
        if snapshot.checkpoint != roots.checkpoint {
            return Err(refuse(format!(
                "snapshot at checkpoint {}, last root at {}",
                snapshot.checkpoint, roots.checkpoint
            )));
        }
        if snapshot.block_hashes.len() != shape.chains() as usize
            || snapshot.nodes.len() != usize::from(shape.depth())
            || snapshot
                .nodes
                .iter()
                .zip(1u8..)
                .any(|(row, l)| row.len() != shape.nodes_at(l) as usize)
        {
            return Err(refuse("snapshot does not have the tree's shape".into()));
        }
        for node in shape.nodes() {
            let (left, right) = child_hashes(hasher, &shape, &snapshot, node)
                .ok_or_else(|| refuse("missing child".into()))?;
            let own =
                node_slot(&snapshot.nodes, node).ok_or_else(|| refuse("missing node".into()))?;
            if hasher.node_hash(node, left, right, own.prev)? != own.hash {
                return Err(refuse(format!(
                    "node ({}, {}) does not recompute",
                    node.level, node.index
                )));
            }
        }
        let root = node_slot(&snapshot.nodes, shape.root())
            .ok_or_else(|| refuse("missing root".into()))?;
        if root.hash != roots.root_hash {
            return Err(refuse(format!(
                "root {} is not the accepted root {}",
                root.hash, roots.root_hash
            )));
        }
        Ok(Self { shape, snapshot })
    }

    /// The tree shape.
    pub fn shape(&self) -> TreeShape {
        self.shape
    }
    /// The last checkpoint.
    pub fn checkpoint(&self) -> Checkpoint {
        self.snapshot.checkpoint
    }
    /// The root's hashes at the last checkpoint.
    pub fn root(&self) -> NodeHashes {
        node_slot(&self.snapshot.nodes, self.shape.root()).unwrap_or_default()
    }
    /// Hashes of node `node` at the last checkpoint.
    pub fn node_hashes(&self, node: NodeId) -> Option<NodeHashes> {
        node_slot(&self.snapshot.nodes, node)
    }
    /// Block hash of chain `chain` at the last checkpoint.
    pub fn block_hash(&self, chain: ChainIndex) -> Option<B256> {
        self.snapshot.block_hashes.get(chain as usize).copied()
    }
    /// The last tree's snapshot (to publish for a successor).
    pub fn snapshot(&self) -> &TreeSnapshot {
        &self.snapshot
    }

    /// Chain `chain`'s path to the last root (its emergency-exit evidence).
    pub fn leaf_path(&self, chain: ChainIndex) -> Result<LeafPath, AggregatorError> {
        let block_hash = self.block_hash(chain).ok_or(AggregatorError::NoSuchNode {
            level: 0,
            index: chain,
            chains: self.shape.chains(),
        })?;
        let mut steps = Vec::new();
        for level in 1..=self.shape.depth() {
            let node = NodeId::new(level, chain >> level);
            let sibling_index = (chain >> (level - 1)) ^ 1;
            let sibling = if level == 1 {
                self.block_hash(sibling_index)
            } else {
                self.node_hashes(NodeId::new(level - 1, sibling_index))
                    .map(|h| h.hash)
            };
            let prev = self
                .node_hashes(node)
                .ok_or(AggregatorError::NoSuchNode {
                    level,
                    index: node.index,
                    chains: self.shape.chains(),
                })?
                .prev;
            steps.push(PathStep { sibling, prev });
        }
        Ok(LeafPath {
            chain,
            checkpoint: self.checkpoint(),
            block_hash,
            steps,
        })
    }

    /// Proves checkpoint `checkpoint() + 1` from the chains' statements (one per chain, in chain
    /// order), bottom-up, and moves to it. Statements are checked first with the reference
    /// rules (linkage to the last block hashes, import form and settlement), so bad input is
    /// refused with a typed error before any proving; on error the state is unchanged.
    pub fn aggregate<P: TreeProver>(
        &mut self,
        prover: &P,
        leaves: &[LeafInput],
    ) -> Result<CheckpointProofs<P::Proof>, AggregatorError> {
        shape_matches(&self.shape, &prover.shape())?;
        let hasher = prover.hasher();
        let checkpoint = self.checkpoint() + 1;
        if checkpoint > MAX_CHECKPOINT {
            return Err(AggregatorError::CheckpointOutOfRange(checkpoint));
        }
        if leaves.len() != self.shape.chains() as usize {
            return Err(AggregatorError::WrongLeaves {
                expected: self.shape.chains() as usize,
                got: leaves.len(),
            });
        }
        // reference statements first: refuse bad input before proving
        let mut statements = Vec::with_capacity(leaves.len());
        for (leaf, chain) in leaves.iter().zip(0u32..) {
            if leaf.chain != chain {
                return Err(AggregatorError::WrongLeaves {
                    expected: self.shape.chains() as usize,
                    got: leaves.len(),
                });
            }
            if leaf.checkpoint != checkpoint {
                return Err(AggregatorError::WrongCheckpoint {
                    expected: checkpoint,
                    got: leaf.checkpoint,
                });
            }
            let expected = self.snapshot.block_hashes[chain as usize];
            if leaf.prev_block_hash != expected {
                return Err(AggregatorError::WrongPrevBlockHash {
                    chain,
                    expected,
                    got: leaf.prev_block_hash,
                });
            }
            statements.push(leaf_statement(&hasher, &self.shape, leaf)?);
        }
        let mut levels = Vec::new();
        let mut below = statements;
        for level in 1..=self.shape.depth() {
            let mut row = Vec::new();
            for (pair, index) in below.chunks(2).zip(0u32..) {
                let node = NodeId::new(level, index);
                let x = self.node_hashes(node).unwrap_or_default().prev;
                row.push(node_statement(
                    &hasher,
                    &self.shape,
                    node,
                    &pair[0],
                    pair.get(1),
                    x,
                )?);
            }
            levels.push(row.clone());
            below = row;
        }
        let root = below.first().cloned().ok_or(AggregatorError::WrongLeaves {
            expected: self.shape.chains() as usize,
            got: 0,
        })?;

        // prove
        let leaf_proofs = leaves
            .iter()
            .map(|l| prover.prove_leaf(l))
            .collect::<Result<Vec<_>, _>>()?;
        let mut proof_levels: Vec<Vec<P::Proof>> = Vec::new();
        for level in 1..=self.shape.depth() {
            let children = proof_levels.last().unwrap_or(&leaf_proofs);
            let mut row = Vec::new();
            for (pair, index) in children.chunks(2).zip(0u32..) {
                let node = NodeId::new(level, index);
                let x = self.node_hashes(node).unwrap_or_default().prev;
                row.push(prover.prove_node(node, &pair[0], pair.get(1), x)?);
            }
            proof_levels.push(row);
        }

        self.snapshot = TreeSnapshot {
            checkpoint,
            block_hashes: leaves.iter().map(|l| l.block_hash).collect(),
            nodes: levels
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|s| NodeHashes {
                            prev: s.prev_hash,
                            hash: s.hash,
                        })
                        .collect()
                })
                .collect(),
        };
        Ok(CheckpointProofs {
            root,
            leaves: leaf_proofs,
            levels: proof_levels,
        })
    }
}

/// The settlement layer's view of the tree: the last accepted root. A root proof is accepted
/// only if it proves the root at the next checkpoint and its previous hash is the last accepted
/// root hash; this one comparison links the whole new tree to the old one (crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootChain {
    shape: TreeShape,
    checkpoint: Checkpoint,
    root_hash: B256,
}

impl RootChain {
    /// The root chain starting at the genesis tree over `genesis_block_hashes`, hashed with
    /// `hasher` (the verifier's hash function).
    pub fn genesis<H: TreeHasher>(
        hasher: &H,
        shape: TreeShape,
        genesis_block_hashes: &[B256],
    ) -> Result<Self, AggregatorError> {
        let state = AggregatorState::genesis(hasher, shape, genesis_block_hashes)?;
        Ok(Self {
            shape,
            checkpoint: 0,
            root_hash: state.root().hash,
        })
    }
    /// The tree shape.
    pub fn shape(&self) -> TreeShape {
        self.shape
    }
    /// The last accepted checkpoint.
    pub fn checkpoint(&self) -> Checkpoint {
        self.checkpoint
    }
    /// The last accepted root hash.
    pub fn root_hash(&self) -> B256 {
        self.root_hash
    }

    /// Verifies a root proof and accepts it if it extends the last accepted root.
    pub fn accept<V: TreeVerifier>(
        &mut self,
        verifier: &V,
        proof: &V::Proof,
    ) -> Result<NodeStatement, AggregatorError> {
        shape_matches(&self.shape, &verifier.shape())?;
        let statement = verifier.verify(proof)?;
        let refuse = |reason: String| Err(AggregatorError::RootRefused { reason });
        if statement.node != self.shape.root() {
            return refuse(format!(
                "proof of ({}, {}) is not the root",
                statement.node.level, statement.node.index
            ));
        }
        if statement.checkpoint != self.checkpoint + 1 {
            return refuse(format!(
                "checkpoint {} does not follow {}",
                statement.checkpoint, self.checkpoint
            ));
        }
        if statement.prev_hash != self.root_hash {
            return refuse(format!(
                "previous root {} is not the accepted {}",
                statement.prev_hash, self.root_hash
            ));
        }
        if !statement.exports.is_empty() {
            return refuse("unsettled exports at the root".into());
        }
        self.checkpoint = statement.checkpoint;
        self.root_hash = statement.hash;
        Ok(statement)
    }
}

/// One level of a [`LeafPath`], from the leaf upwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PathStep {
    /// The sibling at the level below this ancestor, at the checkpoint: a block hash at level 1
    /// (its leaf hash is recomputed), a node hash above; `None` if the ancestor has one child.
    pub sibling: Option<B256>,
    /// The ancestor's own hash at the previous checkpoint.
    pub prev: B256,
}

/// Evidence that chain `chain` had block hash `block_hash` in the tree at `checkpoint`: what a
/// chain needs, with the root accepted there, to settle alone (emergency exit).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeafPath {
    /// The chain.
    pub chain: ChainIndex,
    /// The checkpoint of the root.
    pub checkpoint: Checkpoint,
    /// The chain's block hash there.
    pub block_hash: B256,
    /// One step per level `1..=depth`.
    pub steps: Vec<PathStep>,
}

impl LeafPath {
    /// Recomputes the path: the hashes `(prev, hash)` of each ancestor, levels `1..=depth`.
    fn ancestors<H: TreeHasher>(
        &self,
        hasher: &H,
        shape: &TreeShape,
    ) -> Result<Vec<NodeHashes>, AggregatorError> {
        let refuse = |reason: &str| AggregatorError::ExitRefused {
            reason: reason.into(),
        };
        if self.chain >= shape.chains() || self.steps.len() != usize::from(shape.depth()) {
            return Err(refuse("path does not fit the tree"));
        }
        let mut hash = hasher.leaf_hash(self.chain, self.block_hash);
        let mut out = Vec::with_capacity(self.steps.len());
        for (step, level) in self.steps.iter().zip(1u8..) {
            let node = NodeId::new(level, self.chain >> level);
            let is_left = (self.chain >> (level - 1)) & 1 == 0;
            let sibling = match (step.sibling, level) {
                (Some(s), 1) => Some(hasher.leaf_hash((self.chain ^ 1) as ChainIndex, s)),
                (s, _) => s,
            };
            let (left, right) = if is_left {
                if sibling.is_some() != shape.has_right(node) {
                    return Err(refuse("sibling does not match the tree's shape"));
                }
                (hash, sibling)
            } else {
                (
                    sibling.ok_or_else(|| refuse("missing left sibling"))?,
                    Some(hash),
                )
            };
            hash = hasher.node_hash(node, left, right, step.prev)?;
            out.push(NodeHashes {
                prev: step.prev,
                hash,
            });
        }
        Ok(out)
    }
}

/// What an emergency exit established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitOutcome {
    /// The chain.
    pub chain: ChainIndex,
    /// Its last checkpoint (the root's, plus the statements given).
    pub checkpoint: Checkpoint,
    /// Its block hash there.
    pub block_hash: B256,
}

/// Emergency exit: verifies a chain's progress alone, from the last root `roots` accepted.
/// `path` must show the chain's block hash in that root; `statements` are the chain's own
/// checkpoint statements after it (`checkpoint + 1`, `+ 2`, ...), each linking to the previous
/// block hash. Their imports can no longer be settled by the tree, so each must be a hash of an
/// ancestor at the root's checkpoint `i` or at `i - 1`, which the path recomputes; any other
/// import is refused. (As for leaves, the validity of the chain's blocks themselves is the
/// chain's own evidence, checked where its batches settle.)
pub fn verify_exit<H: TreeHasher>(
    hasher: &H,
    roots: &RootChain,
    path: &LeafPath,
    statements: &[LeafInput],
) -> Result<ExitOutcome, AggregatorError> {
    let refuse = |reason: String| AggregatorError::ExitRefused { reason };
    let shape = roots.shape;
    if path.checkpoint != roots.checkpoint {
        return Err(refuse(format!(
            "path at checkpoint {}, last root at {}",
            path.checkpoint, roots.checkpoint
        )));
    }
    let ancestors = path.ancestors(hasher, &shape)?;
    if ancestors.last().map(|a| a.hash) != Some(roots.root_hash) {
        return Err(refuse("path does not lead to the accepted root".into()));
    }
    let mut outcome = ExitOutcome {
        chain: path.chain,
        checkpoint: path.checkpoint,
        block_hash: path.block_hash,
    };
    for statement in statements {
        if statement.chain != path.chain
            || statement.checkpoint != outcome.checkpoint + 1
            || statement.prev_block_hash != outcome.block_hash
        {
            return Err(refuse(format!(
                "statement at checkpoint {} does not extend checkpoint {}",
                statement.checkpoint, outcome.checkpoint
            )));
        }
        // form: ancestors only, window i-1 / i-2, no conflicts
        leaf_statement(hasher, &shape, statement)?;
        for import in &statement.imports {
            let hashes = ancestors
                .get(usize::from(import.node.level).saturating_sub(1))
                .copied()
                .ok_or_else(|| refuse("import of no ancestor".into()))?;
            let known = if import.checkpoint == path.checkpoint {
                Some(hashes.hash)
            } else if import.checkpoint + 1 == path.checkpoint {
                Some(hashes.prev)
            } else {
                None
            };
            if known != Some(import.hash) {
                return Err(refuse(format!(
                    "import of ({}, {}) at checkpoint {} is not settled by the last root",
                    import.node.level, import.node.index, import.checkpoint
                )));
            }
        }
        outcome.checkpoint = statement.checkpoint;
        outcome.block_hash = statement.block_hash;
    }
    Ok(outcome)
}
