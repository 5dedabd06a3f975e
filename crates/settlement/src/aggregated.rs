//! Aggregated settlement on the SL (seed 001): the shared aggregation tree's root proofs settle
//! every chain under the tree at once.
//!
//! Chains listed in [`AggregationConfig::chains`] (in tree order: position = index) are not
//! proven one by one with `proveBatch`. Every `checkpoint_blocks` blocks (checkpoint `i` ends at
//! block `i * checkpoint_blocks`, which must end a batch) the aggregator proves each chain's
//! checkpoint statement and combines them into a root proof `B_i`, submitted with
//! [`SlCall::SubmitRoot`](crate::SlCall::SubmitRoot) by anyone. The SL:
//! - verifies the root proof and links it to the last accepted root
//!   ([`braid_aggregator::RootChain::accept`]): **one verification per checkpoint for all
//!   chains**; every import the chains made of tree hashes was settled inside the tree;
//! - checks each leaf against the chain's committed batches: its block hash is the
//!   `lastBlockHash` of the chain's batch ending at the checkpoint block, and its imports are
//!   exactly the `aggregated` imports of the batches since the last checkpoint;
//! - takes the chains' execution validity from the leaf's evidence. With the re-execution tree
//!   backend (the one the SL runs here) that evidence is the batches' re-execution from their
//!   DA data, through the SL's proof system, as part of the same call; with a chain validity
//!   proof inside the leaf circuit it would be nothing more than the root verification;
//! - marks every committed batch up to the checkpoint proven (`BatchProven`) and keeps the
//!   tree's snapshot (block and node hashes) for message imports, exits and a successor
//!   aggregator ([`braid_aggregator::AggregatorState::resume`]).
//!
//! **Imports.** An `aggregated` import (a node hash at checkpoint `j`) is checked against the
//! snapshot accepted at `j`; a mismatch is a forged import and fails the batch at once
//! (`BatchCheckFailed`, "forged aggregated import ..."), so the operator or council reverts it
//! and the tree can go on.
//!
//! **Emergency exit.** If no root is accepted for `aggregator_timeout_ms` after a batch was
//! committed (or after the last root, whichever is later), the chain's operator may prove that
//! batch alone with `proveBatch`, as any chain. Its imports of checkpoints no root settled by
//! then fail (the tree can no longer settle them; `verify_exit`'s rule); imports of checkpoints
//! with an accepted root are checked against that root's snapshot. When an aggregator (the same
//! or a successor resuming from the last snapshot) submits roots again, they cover the exited
//! chains' already proven batches too, and the chains are back under the tree.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy_primitives::Address;
use braid_aggregator::{
    AggregatorState, Checkpoint, Import, KeccakHasher, NodeId, ReexecBackend, ReexecProof,
    RootChain, TreeShape, TreeSnapshot, MAX_CHAINS,
};
use braid_primitives::{BatchNumber, BlockNumber, ChainId, ImportKind, ImportedRoot};
use braid_proof::BatchOutputs;
use serde::{Deserialize, Serialize};

use crate::{BatchStatus, SettlementError, SettlementLayer, SlEvent};

/// Parameters of aggregated settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationConfig {
    /// Chains under the aggregation tree, in tree order (empty: no tree).
    #[serde(default)]
    pub chains: Vec<ChainId>,
    /// Blocks per checkpoint; a multiple of every tree chain's batch size.
    #[serde(default = "default_checkpoint_blocks")]
    pub checkpoint_blocks: u64,
    /// A committed batch may settle alone (emergency exit) once no root was accepted for this
    /// long after it was committed and after the last root.
    #[serde(default = "default_aggregator_timeout")]
    pub aggregator_timeout_ms: u64,
}

fn default_checkpoint_blocks() -> u64 {
    8
}
fn default_aggregator_timeout() -> u64 {
    30_000
}

impl Default for AggregationConfig {
    fn default() -> Self {
        Self {
            chains: Vec::new(),
            checkpoint_blocks: default_checkpoint_blocks(),
            aggregator_timeout_ms: default_aggregator_timeout(),
        }
    }
}

impl AggregationConfig {
    /// Whether `chain` settles with the tree.
    pub fn covers(&self, chain: ChainId) -> bool {
        self.chains.contains(&chain)
    }
    /// The tree position of `chain`.
    pub fn position(&self, chain: ChainId) -> Option<u32> {
        braid_primitives::aggregation::tree_position(&self.chains, chain)
    }
    /// Whether `import`, an `aggregated` import by `importer`, is void once `source` reverted
    /// its blocks from `first_block` on
    /// ([`import_voided_by`](braid_primitives::aggregation::import_voided_by)).
    pub fn import_voided_by(
        &self,
        importer: ChainId,
        import: &ImportedRoot,
        source: ChainId,
        first_block: BlockNumber,
    ) -> bool {
        match (self.position(importer), self.position(source)) {
            (Some(i), Some(s)) => braid_primitives::aggregation::import_voided_by(
                i,
                import,
                s,
                self.checkpoint_blocks,
                first_block,
            ),
            _ => false,
        }
    }
    /// The tree's shape (`None` without chains).
    pub fn shape(&self) -> Option<TreeShape> {
        TreeShape::new(u32::try_from(self.chains.len()).ok()?).ok()
    }
    /// Rejects parameters aggregated settlement cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.chains.is_empty() {
            return Ok(());
        }
        if self.chains.len() > MAX_CHAINS as usize {
            return Err(format!(
                "at most {MAX_CHAINS} chains in the aggregation tree"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = self.chains.iter().find(|c| !seen.insert(**c)) {
            return Err(format!("chain {dup} is twice in the aggregation tree"));
        }
        if self
            .chains
            .contains(&braid_primitives::SETTLEMENT_LAYER_CHAIN_ID)
        {
            return Err("chain 0 is the SL, not a tree chain".into());
        }
        if self.checkpoint_blocks == 0 {
            return Err("aggregation checkpoint_blocks must be > 0".into());
        }
        if self.aggregator_timeout_ms == 0 {
            return Err("aggregator_timeout_ms must be > 0".into());
        }
        Ok(())
    }
}

/// The SL's view of the aggregation tree.
#[derive(Debug, Clone, Default)]
pub struct Aggregation {
    roots: Option<RootChain>,
    snapshots: BTreeMap<Checkpoint, TreeSnapshot>,
    last_root_ms: u64,
    root_verifications: u64,
    exits: u64,
}

impl Aggregation {
    /// The accepted root chain (`None` until every tree chain is registered).
    pub fn roots(&self) -> Option<&RootChain> {
        self.roots.as_ref()
    }
    /// The tree accepted at `checkpoint` (0: genesis).
    pub fn snapshot(&self, checkpoint: Checkpoint) -> Option<&TreeSnapshot> {
        self.snapshots.get(&checkpoint)
    }
    /// The last accepted tree (what a successor aggregator resumes from).
    pub fn last_snapshot(&self) -> Option<&TreeSnapshot> {
        self.snapshots.values().next_back()
    }
    /// When the last root was accepted (or the tree started).
    pub fn last_root_ms(&self) -> u64 {
        self.last_root_ms
    }
    /// Root proofs verified so far (one per accepted checkpoint).
    pub fn root_verifications(&self) -> u64 {
        self.root_verifications
    }
    /// Batches settled alone through the emergency exit.
    pub fn exits(&self) -> u64 {
        self.exits
    }
    pub(crate) fn note_exit(&mut self) {
        self.exits += 1;
    }
}

pub(crate) fn err(call: &'static str, reason: impl Into<String>) -> SettlementError {
    SettlementError::Aggregation {
        call,
        reason: reason.into(),
    }
}

/// The tree import an `aggregated` imported root stands for, for the chain at `position`.
pub fn tree_import(position: u32, import: &ImportedRoot) -> Option<Import> {
    if import.kind != ImportKind::Aggregated as u8 {
        return None;
    }
    let level = u8::try_from(import.messageCount)
        .ok()
        .filter(|l| *l >= 1 && *l <= 16)?;
    Some(Import {
        node: NodeId::new(level, position >> level),
        checkpoint: import.sourceHeight,
        hash: import.root,
    })
}

/// What an accepted root settles for one chain.
struct ChainSettlement {
    chain: ChainId,
    proven: Vec<(BatchNumber, BatchOutputs)>,
}

impl SettlementLayer {
    /// The aggregation tree's state on the SL.
    pub fn aggregation(&self) -> &Aggregation {
        &self.aggregation
    }

    /// Whether `chain`'s batch `batch` may settle alone now (emergency exit).
    pub fn aggregation_exit_open(&self, chain: ChainId, batch: BatchNumber) -> bool {
        let Some(rec) = self.batch(chain, batch) else {
            return false;
        };
        let since = rec.committed_at_ms.max(self.aggregation.last_root_ms);
        self.now_ms >= since.saturating_add(self.config.aggregation.aggregator_timeout_ms)
    }

    /// Starts the tree once every tree chain is registered: the genesis root over their
    /// genesis block hashes.
    pub(crate) fn start_aggregation_if_ready(&mut self) {
        let config = &self.config.aggregation;
        if self.aggregation.roots.is_some() {
            return;
        }
        let Some(shape) = config.shape() else {
            return;
        };
        let Some(genesis) = config
            .chains
            .iter()
            .map(|c| self.chains.get(c).map(|r| r.genesis.block_hash))
            .collect::<Option<Vec<_>>>()
        else {
            return;
        };
        let (Ok(roots), Ok(state)) = (
            RootChain::genesis(&KeccakHasher, shape, &genesis),
            AggregatorState::genesis(&KeccakHasher, shape, &genesis),
        ) else {
            return;
        };
        self.aggregation.roots = Some(roots);
        self.aggregation
            .snapshots
            .insert(0, state.snapshot().clone());
        self.aggregation.last_root_ms = self.now_ms;
    }

    /// `submitRoot`: verifies a root proof of the next checkpoint and settles every tree chain
    /// up to it (see the module docs). Every check happens before the first write.
    pub(crate) fn submit_root(
        &mut self,
        sender: Address,
        proof: &Arc<ReexecProof>,
        events: &mut Vec<SlEvent>,
    ) -> Result<(), SettlementError> {
        const CALL: &str = "submitRoot";
        let config = &self.config.aggregation;
        let shape = config
            .shape()
            .ok_or_else(|| err(CALL, "no aggregation tree is configured"))?;
        let mut roots = self
            .aggregation
            .roots
            .ok_or_else(|| err(CALL, "the tree starts once every tree chain is registered"))?;
        let backend = ReexecBackend::new(shape);
        let statement = roots
            .accept(&backend, proof)
            .map_err(|e| err(CALL, e.to_string()))?;
        let snapshot = backend
            .snapshot(proof)
            .map_err(|e| err(CALL, e.to_string()))?;
        let checkpoint = statement.checkpoint;
        let k = config.checkpoint_blocks;
        let last_block = checkpoint
            .checked_mul(k)
            .ok_or_else(|| err(CALL, "checkpoint block out of range"))?;
        let first_block = last_block - k + 1;

        // leaves against the committed batches
        let leaves = proof.leaves();
        let mut plan = Vec::new();
        for (position, chain_id) in config.chains.iter().enumerate() {
            let leaf = leaves
                .get(position)
                .ok_or_else(|| err(CALL, "root proof without every leaf"))?;
            let chain = self
                .chains
                .get(chain_id)
                .ok_or(SettlementError::UnknownChain(*chain_id))?;
            let end = chain
                .batches
                .values()
                .find(|b| b.header.lastBlock == last_block)
                .ok_or_else(|| {
                    err(
                        CALL,
                        format!(
                            "chain {chain_id} has no committed batch ending at block {last_block}"
                        ),
                    )
                })?;
            if end.header.lastBlockHash != leaf.block_hash {
                return Err(err(
                    CALL,
                    format!(
                        "chain {chain_id}: the leaf's block hash {} is not block {last_block}'s {}",
                        leaf.block_hash, end.header.lastBlockHash
                    ),
                ));
            }
            if end.failure.is_some() {
                return Err(err(
                    CALL,
                    format!(
                        "chain {chain_id}: batch {} failed its checks",
                        end.header.number
                    ),
                ));
            }
            let position = position as u32;
            let imports: Vec<Import> = chain
                .batches
                .values()
                .filter(|b| b.header.firstBlock >= first_block && b.header.lastBlock <= last_block)
                .flat_map(|b| b.imports.iter())
                .filter_map(|i| tree_import(position, i))
                .collect();
            if imports != leaf.imports {
                return Err(err(
                    CALL,
                    format!(
                        "chain {chain_id}: the leaf lists {} tree imports, its batches since \
                         block {first_block} hold {}",
                        leaf.imports.len(),
                        imports.len()
                    ),
                ));
            }
            let pending: Vec<BatchNumber> = chain
                .batches
                .range(..=end.header.number)
                .filter(|(_, b)| b.status == BatchStatus::Committed)
                .map(|(n, _)| *n)
                .collect();
            plan.push((*chain_id, pending));
        }

        // a root makes the batches it covers final: their imports must be final already
        self.checkpoint_imports_settled(checkpoint)?;

        // the leaves' execution evidence: re-execution of the batches they cover
        let mut settled = Vec::new();
        for (chain_id, pending) in plan {
            let chain = &self.chains[&chain_id];
            let mut proven = Vec::new();
            for n in pending {
                let rec = &chain.batches[&n];
                let claim = chain.claim(rec).ok_or(SettlementError::UnknownBatch {
                    chain: chain_id,
                    batch: n.saturating_sub(1),
                })?;
                let outputs = self.proofs.verify(&claim, &[]).map_err(|e| {
                    err(
                        CALL,
                        format!("chain {chain_id} batch {n} does not re-execute: {e}"),
                    )
                })?;
                if outputs.imports != rec.imports {
                    return Err(err(
                        CALL,
                        format!("chain {chain_id} batch {n}: imports differ from its blocks'"),
                    ));
                }
                proven.push((n, outputs));
            }
            settled.push(ChainSettlement {
                chain: chain_id,
                proven,
            });
        }

        // writes
        self.aggregation.roots = Some(roots);
        self.aggregation.snapshots.insert(checkpoint, snapshot);
        self.aggregation.last_root_ms = self.now_ms;
        self.aggregation.root_verifications += 1;
        let mut batches_proven = 0;
        for s in settled {
            let Some(chain) = self.chains.get_mut(&s.chain) else {
                continue;
            };
            for (n, outputs) in s.proven {
                if let Some(rec) = chain.batches.get_mut(&n) {
                    rec.status = BatchStatus::Proven;
                    rec.outputs = Some(outputs);
                    batches_proven += 1;
                    events.push(SlEvent::BatchProven {
                        chain: s.chain,
                        batch: n,
                        by: crate::Authority::Anyone,
                    });
                }
            }
        }
        events.push(SlEvent::RootAccepted {
            checkpoint,
            root: statement.hash,
            by: sender,
            batches_proven,
        });
        self.fail_forged_imports(events);
        Ok(())
    }

    /// The tree chains' checkpoint statements `A_checkpoint` as their committed batches give
    /// them (what an aggregator proves; the statements the SL checks a root's leaves against).
    /// `Err` names the first chain whose batch ending at the checkpoint block is not committed
    /// (or failed its checks).
    pub fn checkpoint_statements(
        &self,
        checkpoint: Checkpoint,
    ) -> Result<Vec<braid_aggregator::LeafInput>, String> {
        let config = &self.config.aggregation;
        let k = config.checkpoint_blocks;
        if checkpoint == 0 {
            return Err("checkpoint 0 is genesis".into());
        }
        let last_block = checkpoint.saturating_mul(k);
        let first_block = last_block - k + 1;
        let mut out = Vec::with_capacity(config.chains.len());
        for (position, chain_id) in config.chains.iter().enumerate() {
            let chain = self
                .chains
                .get(chain_id)
                .ok_or_else(|| format!("chain {chain_id} is not registered"))?;
            let ending = |block: u64| {
                if block == 0 {
                    return Some(chain.genesis.block_hash);
                }
                chain
                    .batches
                    .values()
                    .find(|b| b.header.lastBlock == block && b.failure.is_none())
                    .map(|b| b.header.lastBlockHash)
            };
            let block_hash = ending(last_block).ok_or_else(|| {
                format!("chain {chain_id} has not committed block {last_block} (checkpoint {checkpoint})")
            })?;
            let prev_block_hash = ending(first_block - 1).ok_or_else(|| {
                format!(
                    "chain {chain_id} has no batch ending at block {}",
                    first_block - 1
                )
            })?;
            let imports = chain
                .batches
                .values()
                .filter(|b| b.header.firstBlock >= first_block && b.header.lastBlock <= last_block)
                .flat_map(|b| b.imports.iter())
                .filter_map(|i| tree_import(position as u32, i))
                .collect();
            out.push(braid_aggregator::LeafInput {
                chain: position as u32,
                checkpoint,
                prev_block_hash,
                block_hash,
                imports,
            });
        }
        Ok(out)
    }

    /// Whether `import` (an `aggregated` import by `importer`) contradicts a tree the SL
    /// accepted: a forged import, never to be imported again.
    pub fn aggregated_import_contradicted(&self, importer: ChainId, import: &ImportedRoot) -> bool {
        let Some(position) = self.config.aggregation.position(importer) else {
            return false;
        };
        let Some(tree) = tree_import(position, import) else {
            return false;
        };
        self.aggregation
            .snapshots
            .get(&tree.checkpoint)
            .is_some_and(|s| node_hash(s, tree.node) != Some(tree.hash))
    }

    /// Whether `import` (an `aggregated` import by `importer`) can no longer be settled: an
    /// accepted tree contradicts it, or no root settled its checkpoint before the aggregator
    /// timed out (batches holding it fail their import check once their exit is open). A
    /// re-sequenced chain drops such imports instead of including them again.
    pub fn aggregated_import_unsettleable(&self, importer: ChainId, import: &ImportedRoot) -> bool {
        if self.aggregated_import_contradicted(importer, import) {
            return true;
        }
        let accepted = self.aggregation.roots.map_or(0, |r| r.checkpoint());
        import.kind == ImportKind::Aggregated as u8
            && self.config.aggregation.covers(importer)
            && import.sourceHeight > accepted
            && self.now_ms
                >= self
                    .aggregation
                    .last_root_ms
                    .saturating_add(self.config.aggregation.aggregator_timeout_ms)
    }

    /// Checks one `aggregated` import of a batch of `importer` at execution time: `Ok(true)`
    /// once the accepted tree holds the imported hash and every chain under the node executed
    /// its batches through the checkpoint (or is about to, among `candidates`), `Ok(false)` to
    /// wait, `Err` if it can never settle.
    pub(crate) fn check_aggregated_import(
        &self,
        importer: ChainId,
        batch: BatchNumber,
        import: &ImportedRoot,
        candidates: &BTreeMap<ChainId, Vec<BatchNumber>>,
    ) -> Result<bool, String> {
        let position = self
            .config
            .aggregation
            .position(importer)
            .ok_or_else(|| format!("chain {importer} is not in the aggregation tree"))?;
        let tree = tree_import(position, import)
            .ok_or_else(|| format!("aggregated import with level {}", import.messageCount))?;
        match self.aggregation.snapshots.get(&import.sourceHeight) {
            Some(snapshot) => {
                let actual = node_hash(snapshot, tree.node);
                if actual != Some(import.root) {
                    return Err(forged(importer, &tree));
                }
                // as with every import, the sources settle first: each chain under the node has
                // executed its batches through the checkpoint's block
                let config = &self.config.aggregation;
                let level = u32::from(tree.node.level);
                let first = tree.node.index << level;
                let last = (tree.node.index + 1) << level;
                let through = import.sourceHeight.saturating_mul(config.checkpoint_blocks);
                let settled = config
                    .chains
                    .iter()
                    .skip(first as usize)
                    .take((last - first) as usize)
                    .all(|c| {
                        self.chains.get(c).is_some_and(|r| {
                            let reaches = |b: &BatchNumber| {
                                r.batches
                                    .get(b)
                                    .is_some_and(|b| b.header.lastBlock >= through)
                            };
                            through == 0
                                || reaches(&r.last_executed)
                                || candidates.get(c).is_some_and(|l| l.iter().any(reaches))
                        })
                    });
                Ok(settled)
            }
            None if self.aggregation_exit_open(importer, batch) => Err(format!(
                "aggregated import of checkpoint {}, which no root settled before the \
                 aggregator timed out",
                import.sourceHeight
            )),
            None => Ok(false),
        }
    }

    /// Fails every unexecuted batch of a tree chain holding an `aggregated` import that an
    /// accepted tree contradicts.
    pub(crate) fn fail_forged_imports(&mut self, events: &mut Vec<SlEvent>) {
        let mut failed = Vec::new();
        for (position, chain_id) in self.config.aggregation.chains.iter().enumerate() {
            let Some(chain) = self.chains.get(chain_id) else {
                continue;
            };
            for (n, rec) in chain.batches.range(chain.last_executed + 1..) {
                if rec.failure.is_some() {
                    continue;
                }
                let forged_import = rec.imports.iter().find_map(|i| {
                    let tree = tree_import(position as u32, i)?;
                    let snapshot = self.aggregation.snapshots.get(&tree.checkpoint)?;
                    (node_hash(snapshot, tree.node) != Some(tree.hash))
                        .then(|| forged(*chain_id, &tree))
                });
                if let Some(reason) = forged_import {
                    failed.push((*chain_id, *n, reason));
                }
            }
        }
        for (chain_id, n, reason) in failed {
            if let Some(rec) = self
                .chains
                .get_mut(&chain_id)
                .and_then(|c| c.batches.get_mut(&n))
            {
                rec.failure = Some(reason.clone());
                events.push(SlEvent::BatchCheckFailed {
                    chain: chain_id,
                    batch: n,
                    reason,
                });
            }
        }
    }
}

fn node_hash(snapshot: &TreeSnapshot, node: NodeId) -> Option<alloy_primitives::B256> {
    snapshot
        .nodes
        .get(usize::from(node.level).checked_sub(1)?)?
        .get(node.index as usize)
        .map(|h| h.hash)
}

fn forged(chain: ChainId, import: &Import) -> String {
    format!(
        "forged aggregated import: chain {chain} imported {} as node ({}, {}) at checkpoint {}, \
         which the accepted tree contradicts",
        import.hash, import.node.level, import.node.index, import.checkpoint
    )
}

#[cfg(test)]
mod tests;
