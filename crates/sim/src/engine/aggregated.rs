//! The shared proof aggregator in the simulator (seed 001): an aggregator role that reads the
//! chains' checkpoint statements from the SL's committed batches, builds the linked tree with
//! the re-execution backend (real keccak hashes, real import settlement), publishes each level's
//! hashes to the relayer when its modelled proving time (per level, from the plonky2 benchmark)
//! has passed, and submits the root proof to the SL. Its adversaries (stall, withhold a chain's
//! statement, wrong previous hash), a successor that resumes the tree from the SL's last
//! accepted root, and forged imports injected into sequencers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alloy_primitives::{keccak256, B256};
use braid_aggregator::{
    AggregatorError, AggregatorState, KeccakHasher, ReexecBackend, ReexecProof, TreeShape,
    TreeSnapshot, TreeVerifier,
};
use braid_execution::TxSigner;
use braid_primitives::{ChainId, ImportKind, ImportedRoot};
use braid_relayer::RelayerInput;
use braid_settlement::{AggregationConfig, SlCall, SlEvent};

use super::{Delivery, Event, Sim};
use crate::net::{Class, Role};
use crate::report::{AggregationReport, LatencyStats, LevelExports, Takeover};
use crate::scenario::{AggregationSpec, AggregatorBehaviour};

/// Size of a plonky2 root proof (`docs/benchmarks.md`: 132 984 B for one level, +80 B per
/// further level).
fn plonky2_root_bytes(depth: u8) -> u64 {
    132_984 + 80 * u64::from(depth.saturating_sub(1))
}

/// SL key of aggregator `generation` (0: the first, 1: the successor).
fn aggregator_key(generation: u32) -> Result<TxSigner, String> {
    TxSigner::from_secret(keccak256(format!("braid sim aggregator {generation}")))
        .map_err(|e| e.to_string())
}

/// The aggregator role of a run.
pub(super) struct AggregatorNet {
    spec: AggregationSpec,
    tree: Vec<ChainId>,
    shape: TreeShape,
    /// The working aggregator's tree (`None`: none is working).
    state: Option<AggregatorState>,
    key: TxSigner,
    generation: u32,
    /// The SL refused a root: the working aggregator resumes from the last accepted one.
    resync: bool,
    /// Bumped at every resync: root proofs of an earlier epoch are dropped.
    epoch: u32,
    /// Statements already found unaggregatable (checkpoint, reason), counted once.
    refused_statements: BTreeSet<(u64, String)>,
    /// Exports per proof, per level: (proofs, sum, max).
    exports: BTreeMap<u8, (u64, u64, u64)>,
    checkpoint_to_root: Vec<u64>,
    /// When each checkpoint's statements were all on the SL.
    statements_at: BTreeMap<u64, u64>,
    exited: BTreeSet<ChainId>,
    /// Tree chains' reverts: (tree position, first void block). A level proven over a void
    /// block is stale and never reaches the relayer.
    void_blocks: BTreeMap<usize, u64>,
    stats: AggregationReport,
}

impl AggregatorNet {
    pub(super) fn new(
        spec: &AggregationSpec,
        tree: Vec<ChainId>,
        block_time_ms: u64,
    ) -> Result<Self, String> {
        let shape = TreeShape::new(tree.len() as u32).map_err(|e| e.to_string())?;
        let stats = AggregationReport {
            chains: tree.len(),
            depth: shape.depth(),
            checkpoint_blocks: spec.checkpoint_blocks,
            checkpoint_interval_ms: spec.checkpoint_blocks * block_time_ms,
            leaf_prove_ms: spec.leaf_prove_ms,
            node_prove_ms: spec.node_prove_ms,
            root_prove_ms: spec.leaf_prove_ms + u64::from(shape.depth()) * spec.node_prove_ms,
            root_proof_bytes_plonky2_model: plonky2_root_bytes(shape.depth()),
            ..AggregationReport::default()
        };
        Ok(Self {
            spec: spec.clone(),
            tree,
            shape,
            state: None,
            key: aggregator_key(0)?,
            generation: 0,
            resync: false,
            epoch: 0,
            refused_statements: BTreeSet::new(),
            exports: BTreeMap::new(),
            checkpoint_to_root: Vec::new(),
            statements_at: BTreeMap::new(),
            exited: BTreeSet::new(),
            void_blocks: BTreeMap::new(),
            stats,
        })
    }

    /// The SL's aggregation parameters.
    pub(super) fn sl_config(&self) -> AggregationConfig {
        AggregationConfig {
            chains: self.tree.clone(),
            checkpoint_blocks: self.spec.checkpoint_blocks,
            aggregator_timeout_ms: self.spec.aggregator_timeout_ms,
        }
    }

    /// Whether `chain` is under the tree.
    pub(super) fn covers(&self, chain: ChainId) -> bool {
        self.tree.contains(&chain)
    }

    /// The relayer's view of the tree.
    pub(super) fn relayer_view(&self) -> braid_relayer::AggregationView {
        braid_relayer::AggregationView {
            chains: self.tree.clone(),
            checkpoint_blocks: self.spec.checkpoint_blocks,
            aggregator_timeout_ms: Some(self.spec.aggregator_timeout_ms),
        }
    }

    /// The adversary's behaviour at `now`, for the first aggregator only.
    fn misbehaviour(&self, now: u64) -> Option<(AggregatorBehaviour, Option<ChainId>)> {
        let a = self.spec.adversary?;
        (self.generation == 0 && now >= a.from_ms).then_some((a.behaviour, a.chain))
    }

    pub(super) fn report(&self, sl: &braid_settlement::SettlementLayer) -> AggregationReport {
        let mut r = self.stats.clone();
        let agg = sl.aggregation();
        r.sl_verifications_per_checkpoint = if r.roots_accepted == 0 {
            0.0
        } else {
            agg.root_verifications() as f64 / r.roots_accepted as f64
        };
        r.emergency_exits = agg.exits();
        r.chains_exited = self.exited.iter().copied().collect();
        r.last_accepted_checkpoint = agg.roots().map_or(0, |x| x.checkpoint());
        r.checkpoint_to_root_ms = LatencyStats::of(&self.checkpoint_to_root);
        r.exports_per_level = self
            .exports
            .iter()
            .map(|(level, (proofs, sum, max))| LevelExports {
                level: *level,
                proofs: *proofs,
                max: *max,
                mean: if *proofs == 0 {
                    0.0
                } else {
                    *sum as f64 / *proofs as f64
                },
            })
            .collect();
        r
    }
}

impl Sim<'_> {
    /// Schedules the aggregator role's timers (the first aggregator starts from the SL's
    /// genesis tree once every tree chain is registered).
    pub(super) fn aggregation_schedule(&mut self) {
        let Some(net) = self.aggregation.as_ref() else {
            return;
        };
        let spec = net.spec.clone();
        for (i, f) in spec.forged_imports.iter().enumerate() {
            self.schedule(f.at_ms, Event::ForgeImport(i));
        }
        if let Some(at) = spec.takeover_at_ms {
            self.schedule(at, Event::AggregatorTakeover);
        }
        self.schedule(self.scenario.sl_block_time_ms, Event::AggregatorTick);
    }

    /// The working aggregator proves every checkpoint whose statements are all on the SL.
    pub(super) fn aggregator_tick(&mut self) -> Result<(), String> {
        let next = self.now + self.scenario.sl_block_time_ms;
        self.schedule(next, Event::AggregatorTick);
        let now = self.now;
        let Some(net) = self.aggregation.as_mut() else {
            return Ok(());
        };
        let misbehaviour = net.misbehaviour(now);
        if matches!(misbehaviour, Some((AggregatorBehaviour::Stall, _))) {
            return Ok(());
        }
        if net.state.is_none() && net.generation == 0 {
            let agg = self.sl.aggregation();
            if let (Some(roots), Some(genesis)) = (agg.roots(), agg.snapshot(0)) {
                let state = AggregatorState::resume(&KeccakHasher, roots, genesis.clone())
                    .map_err(|e| format!("aggregator start: {e}"))?;
                net.state = Some(state);
            }
        }
        if net.resync && net.state.is_some() {
            // a refused root: continue from the last root the SL accepted
            net.resync = false;
            let agg = self.sl.aggregation();
            if let (Some(roots), Some(last)) = (agg.roots(), agg.last_snapshot()) {
                net.state = Some(
                    AggregatorState::resume(&KeccakHasher, roots, last.clone())
                        .map_err(|e| format!("aggregator resync: {e}"))?,
                );
                net.stats.resyncs += 1;
                net.epoch += 1;
            }
        }
        let Some(state) = net.state.as_mut() else {
            return Ok(());
        };
        let backend = ReexecBackend::new(net.shape);
        let mut scheduled = Vec::new();
        loop {
            let checkpoint = state.checkpoint() + 1;
            let Ok(mut leaves) = self.sl.checkpoint_statements(checkpoint) else {
                break;
            };
            net.statements_at.entry(checkpoint).or_insert(now);
            if let Some((AggregatorBehaviour::Withhold, Some(chain))) = misbehaviour {
                // keep the chain where it was: its statement A_i is left out
                if let Some(p) = net.tree.iter().position(|c| *c == chain) {
                    let old = state.block_hash(p as u32).unwrap_or_default();
                    leaves[p].prev_block_hash = old;
                    leaves[p].block_hash = old;
                    leaves[p].imports.clear();
                }
            }
            let proofs = match state.aggregate(&backend, &leaves) {
                Ok(p) => p,
                Err(e) => {
                    let forged = matches!(
                        e,
                        AggregatorError::ImportMismatch { .. }
                            | AggregatorError::ConflictingExports { .. }
                            | AggregatorError::ImportOutOfWindow { .. }
                            | AggregatorError::NotAnAncestor { .. }
                    );
                    if net.refused_statements.insert((checkpoint, e.to_string())) && forged {
                        net.stats.forged_imports_rejected_by_tree += 1;
                    }
                    break;
                }
            };
            net.stats.checkpoints_proven += 1;
            // exports per proof per level
            let mut levels: Vec<(u8, usize)> = Vec::new();
            for leaf in &proofs.leaves {
                levels.push((0, backend.verify(leaf).map_or(0, |s| s.exports.len())));
            }
            for (row, level) in proofs.levels.iter().zip(1u8..) {
                for p in row {
                    levels.push((level, backend.verify(p).map_or(0, |s| s.exports.len())));
                }
            }
            for (level, count) in levels {
                note_exports(&mut net.exports, level, count);
            }
            let snapshot = Arc::new(state.snapshot().clone());
            let mut root = proofs.root_proof().cloned();
            if let (Some((AggregatorBehaviour::WrongPrevHash, _)), Some(r)) =
                (misbehaviour, root.as_ref())
            {
                root = Some(wrong_prev_hash(r));
            }
            let depth = net.shape.depth();
            for level in 1..=depth {
                let at = now + net.spec.leaf_prove_ms + u64::from(level) * net.spec.node_prove_ms;
                scheduled.push((
                    at,
                    Event::AggregatorLevel {
                        generation: net.generation,
                        checkpoint,
                        level,
                        snapshot: Arc::clone(&snapshot),
                    },
                ));
            }
            if let Some(root) = root {
                let at = now + net.stats.root_prove_ms;
                scheduled.push((
                    at,
                    Event::AggregatorRoot {
                        generation: net.generation,
                        epoch: net.epoch,
                        checkpoint,
                        proof: root,
                    },
                ));
            }
        }
        for (at, ev) in scheduled {
            self.schedule(at, ev);
        }
        Ok(())
    }

    /// A level's proofs are done: its hashes go to the relayer.
    pub(super) fn aggregator_level(
        &mut self,
        generation: u32,
        checkpoint: u64,
        level: u8,
        snapshot: Arc<TreeSnapshot>,
    ) {
        let now = self.now;
        let Some(net) = self.aggregation.as_ref() else {
            return;
        };
        if generation != net.generation
            || matches!(net.misbehaviour(now), Some((AggregatorBehaviour::Stall, _)))
        {
            return;
        }
        // stale: proven over a block a revert voided since (it is no longer the one committed)
        let through = checkpoint.saturating_mul(net.spec.checkpoint_blocks);
        let stale = net.void_blocks.iter().any(|(position, first)| {
            *first <= through
                && net
                    .tree
                    .get(*position)
                    .and_then(|c| self.sl.chain(*c))
                    .is_none_or(|c| {
                        c.batches
                            .values()
                            .find(|b| b.header.lastBlock == through)
                            .is_none_or(|b| {
                                snapshot.block_hashes.get(*position)
                                    != Some(&b.header.lastBlockHash)
                            })
                    })
        });
        if stale {
            return;
        }
        let d = Delivery::TreeLevel {
            checkpoint,
            level,
            snapshot,
        };
        self.send(Role::Aggregator, Role::Relayer, Class::Feed, d);
    }

    /// The root proof is done: it goes to the SL.
    pub(super) fn aggregator_root(
        &mut self,
        generation: u32,
        epoch: u32,
        checkpoint: u64,
        proof: Arc<ReexecProof>,
    ) {
        let now = self.now;
        let Some(net) = self.aggregation.as_ref() else {
            return;
        };
        let accepted = self.sl.aggregation().roots().map_or(0, |r| r.checkpoint());
        if generation != net.generation
            || epoch != net.epoch
            || checkpoint <= accepted
            || matches!(net.misbehaviour(now), Some((AggregatorBehaviour::Stall, _)))
        {
            return; // stale (a resync re-proved it), or the aggregator stalls
        }
        if checkpoint > accepted + 1 || self.sl.checkpoint_imports_settled(checkpoint).is_err() {
            // roots go to the SL in order: wait for the one before to be accepted; and a root
            // makes its batches final, so it waits until their imports are final
            let at = now + self.scenario.sl_block_time_ms;
            let ev = Event::AggregatorRoot {
                generation,
                epoch,
                checkpoint,
                proof,
            };
            self.schedule(at, ev);
            return;
        }
        if let Some(net) = self.aggregation.as_mut() {
            net.stats.root_proof_bytes_reexec =
                postcard::to_allocvec(proof.as_ref()).map_or(0, |b| b.len() as u64);
        }
        let d = Delivery::AggregatorCall {
            generation,
            call: SlCall::SubmitRoot { proof },
        };
        self.send(Role::Aggregator, Role::Sl, Class::Datagram, d);
    }

    /// An aggregator's call reaches the SL.
    pub(super) fn aggregator_call_arrived(
        &mut self,
        generation: u32,
        call: SlCall,
    ) -> Result<(), String> {
        let Some(net) = self.aggregation.as_ref() else {
            return Ok(());
        };
        let key = if generation == net.generation {
            net.key.clone()
        } else {
            aggregator_key(generation)?
        };
        // a refusal at submission shows in the SL's rejections (and the report)
        self.submit_signed(&key, call).map(|_| ())
    }

    /// The successor takes over from the SL's last accepted root; the first aggregator stops.
    pub(super) fn aggregator_takeover(&mut self) -> Result<(), String> {
        let now = self.now;
        let roots = self.sl.aggregation().roots().copied();
        let snapshot = self.sl.aggregation().last_snapshot().cloned();
        let Some(net) = self.aggregation.as_mut() else {
            return Ok(());
        };
        let (Some(roots), Some(snapshot)) = (roots, snapshot) else {
            return Err("takeover: the SL has no accepted tree".into());
        };
        let resumed_from = snapshot.checkpoint;
        net.state = Some(
            AggregatorState::resume(&KeccakHasher, &roots, snapshot)
                .map_err(|e| format!("takeover: {e}"))?,
        );
        net.generation += 1;
        net.key = aggregator_key(net.generation)?;
        net.stats.takeover = Some(Takeover {
            at_ms: now,
            resumed_from_checkpoint: resumed_from,
            roots_accepted: 0,
        });
        Ok(())
    }

    /// A forged tree-hash import reaches a chain's sequencer: an ancestor's hash at the
    /// checkpoint before the chain's current one, altered.
    pub(super) fn forge_import(&mut self, i: usize) {
        let Some(net) = self.aggregation.as_mut() else {
            return;
        };
        let Some(f) = net.spec.forged_imports.get(i).copied() else {
            return;
        };
        let k = net.spec.checkpoint_blocks;
        let Some(node) = self.chains.get_mut(&f.chain) else {
            return;
        };
        let current = (node.role.seq().head().number + 1).div_ceil(k);
        let checkpoint = current.saturating_sub(1);
        let import = ImportedRoot {
            kind: ImportKind::Aggregated as u8,
            sourceChain: 0,
            sourceHeight: checkpoint,
            root: keccak256(format!("forged tree hash {i} at checkpoint {checkpoint}")),
            messageCount: 1,
        };
        // a Byzantine sequencer includes it whatever its SL says (the SL's check is under test)
        let _refused = node.role.import(import, None, &braid_driver::NoTree);
        net.stats.forged_imports_injected += 1;
    }

    /// SL events the aggregator role and its report follow.
    pub(super) fn aggregation_sl_event(&mut self, e: &SlEvent) {
        let now = self.now;
        let block_time = self.scenario.block_time_ms;
        let Some(net) = self.aggregation.as_mut() else {
            return;
        };
        match e {
            SlEvent::RootAccepted {
                checkpoint,
                by,
                batches_proven,
                ..
            } => {
                net.stats.roots_accepted += 1;
                net.stats.batches_proven_by_roots += batches_proven;
                if *by != aggregator_key(0).map(|k| k.address()).unwrap_or_default() {
                    if let Some(t) = net.stats.takeover.as_mut() {
                        t.roots_accepted += 1;
                    }
                }
                // the checkpoint's last block was produced about at checkpoint × K × block time
                let block_at = checkpoint * net.spec.checkpoint_blocks * block_time;
                net.checkpoint_to_root.push(now.saturating_sub(block_at));
            }
            SlEvent::TxRejected { call, error, .. } if *call == "submitRoot" => {
                let reason = match error {
                    braid_settlement::SettlementError::Aggregation { reason, .. } => {
                        simplify_reason(reason)
                    }
                    other => other.to_string(),
                };
                *net.stats.roots_refused.entry(reason).or_default() += 1;
                net.resync = true;
            }
            SlEvent::AggregationExit { chain, .. } => {
                net.exited.insert(*chain);
            }
            SlEvent::BatchesReverted {
                chain, first_block, ..
            } => {
                // a tree chain reverted blocks the working tree (or a level on its way to the
                // relayer) may hold: resume from the last accepted root, over the new blocks
                let Some(position) = net.tree.iter().position(|c| c == chain) else {
                    return;
                };
                let v = net.void_blocks.entry(position).or_insert(*first_block);
                *v = (*v).min(*first_block);
                let k = net.spec.checkpoint_blocks;
                if net
                    .state
                    .as_ref()
                    .is_some_and(|s| s.checkpoint().saturating_mul(k) >= *first_block)
                {
                    net.resync = true;
                }
            }
            SlEvent::BatchCheckFailed { reason, .. }
                if reason.starts_with("forged aggregated import")
                    || reason.starts_with("aggregated import of checkpoint") =>
            {
                net.stats.batches_failed_on_imports += 1;
            }
            _ => {}
        }
    }

    /// A tree level reaches the relayer.
    pub(super) fn relayer_tree_level(
        &mut self,
        checkpoint: u64,
        level: u8,
        snapshot: Arc<TreeSnapshot>,
    ) {
        let effects = self.relayer.handle(
            self.now,
            RelayerInput::TreeLevelProven {
                checkpoint,
                level,
                snapshot,
            },
        );
        self.relayer_effects(effects);
    }

    /// Whether a tree chain's reverted blocks were under an accepted root (invariant
    /// `tree_block_reverted`: blocks a root settled are final).
    pub(super) fn tree_revert_check(&mut self, chain: ChainId, first_block: u64) {
        let Some(net) = self.aggregation.as_ref() else {
            return;
        };
        if !net.covers(chain) {
            return;
        }
        let accepted = self.sl.aggregation().roots().map_or(0, |r| r.checkpoint());
        let settled_through = accepted * net.spec.checkpoint_blocks;
        if first_block <= settled_through && self.invariants.pending.is_none() {
            self.invariants.pending = Some((
                "tree_block_reverted",
                format!(
                    "chain {chain} reverted blocks from {first_block}, but the tree's accepted \
                     root at checkpoint {accepted} settled it through block {settled_through}"
                ),
            ));
        }
    }
}

/// The root proof with a wrong extra input (the root's hash two checkpoints back).
fn wrong_prev_hash(root: &Arc<ReexecProof>) -> Arc<ReexecProof> {
    match root.as_ref() {
        ReexecProof::Node {
            node, left, right, ..
        } => Arc::new(ReexecProof::Node {
            node: *node,
            prev_prev_hash: B256::repeat_byte(0xbd),
            left: Arc::clone(left),
            right: right.clone(),
        }),
        ReexecProof::Leaf(_) => Arc::clone(root),
    }
}

/// A refusal reason without its hashes and numbers, to count refusals by kind.
fn simplify_reason(reason: &str) -> String {
    if reason.contains("previous root") {
        "previous root is not the accepted one".into()
    } else if reason.contains("leaf's block hash") {
        "a leaf's block hash is not the committed block's".into()
    } else if reason.contains("its hash there is") {
        "a node's hash contradicts its history (wrong previous hash)".into()
    } else if reason.contains("does not follow") {
        "checkpoint does not follow the accepted one".into()
    } else {
        reason
            .split(':')
            .next()
            .unwrap_or(reason)
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect()
    }
}

/// Counts one proof at `level` exporting `count` hashes: (proofs, exports, most in one proof).
fn note_exports(exports: &mut BTreeMap<u8, (u64, u64, u64)>, level: u8, count: usize) {
    let e = exports.entry(level).or_default();
    e.0 += 1;
    e.1 += count as u64;
    e.2 = e.2.max(count as u64);
}
