//! A chain node: its sequencer and its operator, co-located (sealed batches and the operator's
//! revert and finality decisions pass between them directly), with the view of the SL the
//! operator acts on.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::B256;

use braid_operator::{ExtensionProofs, Operator, OperatorAction};
use braid_primitives::{BatchHeader, BatchNumber, BlockNumber, ChainId, ImportedRoot};
use braid_relayer::Relayer;
use braid_sequencer::{
    RevertOutcome, SealedBatch, SealedBlock, Sequencer, SequencerInput, SequencerOutput,
};
use braid_settlement::{AggregationConfig, RevertCause, SettlementLayer, SlCall, SlEvent};

use crate::{DriverError, SlMirror};

/// What a chain's operator may ask of its own SL node beyond the events it follows: questions
/// whose answer depends on the SL's clock. Implemented by [`SettlementLayer`] (an SL node in
/// process) and by [`NoTree`] for networks without an aggregation tree.
pub trait SlNode {
    /// Whether `chain` may prove `batch` alone now (the aggregation emergency exit is open).
    fn aggregation_exit_open(&self, chain: ChainId, batch: BatchNumber) -> bool;
    /// Whether an `aggregated` import of `chain` can never settle (its checkpoint's root is
    /// contradicted or overdue): a re-sequenced batch must not import it again.
    fn aggregated_import_unsettleable(&self, chain: ChainId, import: &ImportedRoot) -> bool;
}

impl SlNode for SettlementLayer {
    fn aggregation_exit_open(&self, chain: ChainId, batch: BatchNumber) -> bool {
        SettlementLayer::aggregation_exit_open(self, chain, batch)
    }
    fn aggregated_import_unsettleable(&self, chain: ChainId, import: &ImportedRoot) -> bool {
        SettlementLayer::aggregated_import_unsettleable(self, chain, import)
    }
}

/// The answer of an SL node without an aggregation tree: no exit to open, no tree import.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTree;

impl SlNode for NoTree {
    fn aggregation_exit_open(&self, _: ChainId, _: BatchNumber) -> bool {
        false
    }
    fn aggregated_import_unsettleable(&self, _: ChainId, _: &ImportedRoot) -> bool {
        false
    }
}

/// Extension proofs for the operator's `precommit` imports, read from a relayer core that
/// follows the source chains (the relayer itself, or a chain node's watcher of its peers).
#[derive(Clone, Copy)]
pub struct WatchedSources<'a>(pub &'a Relayer);

impl ExtensionProofs for WatchedSources<'_> {
    fn precommit_extension(&self, import: &ImportedRoot) -> Option<braid_merkle::ExtensionProof> {
        self.0.precommit_extension(import)
    }
}

/// Why a chain node refused an import before its sequencer saw it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportRefusal {
    /// A revert of the source that the sender had not seen voided the imported root.
    #[error(
        "import of chain {source_chain} at height {height} was built at source epoch {sent_at_epoch}; \
         revert {revert} of the source (batches from {from_batch}, blocks from {first_block}) \
         voided it"
    )]
    VoidedBySourceRevert {
        /// The source chain.
        source_chain: ChainId,
        /// The imported block (or batch) number.
        height: u64,
        /// Reverts of the source the sender had seen.
        sent_at_epoch: u64,
        /// The revert (1-based count) that voided it.
        revert: u64,
        /// That revert's first batch.
        from_batch: BatchNumber,
        /// That revert's first block.
        first_block: BlockNumber,
    },
    /// The SL reverted a batch of this chain for holding this very import: the source's
    /// committed batch holds another LocalRoot at that block (`RevertCause::Contradicted`).
    #[error(
        "import of chain {source_chain} at {height} is contradicted by the source's committed \
         batches (the SL reverted a batch holding it)"
    )]
    Contradicted {
        /// The source chain.
        source_chain: ChainId,
        /// The imported block or batch number.
        height: u64,
    },
    /// An `aggregated` import whose checkpoint the SL can no longer settle (an accepted tree
    /// contradicts it, or the aggregator timed out before a root covered it): a batch holding
    /// it could never execute.
    #[error(
        "aggregated import of checkpoint {checkpoint} can no longer settle on the SL \
         (contradicted, or the aggregator timed out before a root covered it)"
    )]
    UnsettleableAggregated {
        /// The imported checkpoint.
        checkpoint: u64,
    },
}

/// Why the sequencer rolled back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackCause {
    /// The SL reverted the chain's batches.
    Reverted(RevertCause),
    /// A source chain reverted: the open batch imported one of its void roots (or one waited in
    /// the import queue). The SL's cascade cannot reach the open batch.
    VoidImports {
        /// The reverted source chain.
        source: ChainId,
    },
}

/// What the chain node asks its shell to do (persist, announce, report).
#[derive(Debug)]
pub enum ChainEffect {
    /// A block was produced: persist it (with `closes`, the header of the batch it closes),
    /// then announce it (relayer, validators).
    BlockSealed {
        /// The block, its receipts and state changes.
        block: Box<SealedBlock>,
        /// The batch this block closes, if any.
        closes: Option<BatchHeader>,
    },
    /// A batch was sealed and handed to the operator: announce its header.
    BatchSealed {
        /// The batch as the sequencer sealed it.
        batch: Box<SealedBatch>,
        /// The operator was handed an altered copy (fault injection, see
        /// [`ChainRole::alter_next_batch`]).
        altered: bool,
    },
    /// Any other sequencer answer (transaction accepted, refused or dropped; import queued or
    /// refused).
    Output(SequencerOutput),
    /// Blocks from `first_block` on hold an import a source revert voided: executions there
    /// are void, and the blocks will be rolled back (the open batch at once, a sealed batch by
    /// the SL's cascade or its failed import check).
    Doomed {
        /// The reverted source chain.
        source: ChainId,
        /// The first local block holding a void import.
        first_block: BlockNumber,
    },
    /// The sequencer rolled back to `outcome.head`: roll storage back the same way before
    /// persisting the next block.
    RolledBack {
        /// What the roll-back did.
        outcome: Box<RevertOutcome>,
        /// Why.
        cause: RollbackCause,
    },
    /// The SL executed every batch through `through`: they are final.
    Finalized {
        /// The last final batch.
        through: BatchNumber,
    },
    /// SL blocks `from..=to` never arrived ([`ChainRole::observe_sl_block`]): fetch their events
    /// for this chain again; later blocks wait.
    SlGap {
        /// First missing SL height.
        from: u64,
        /// Last missing SL height.
        to: u64,
    },
    /// An import was refused before reaching the sequencer (tell its sender).
    ImportRefused {
        /// The import.
        import: ImportedRoot,
        /// Why.
        reason: ImportRefusal,
    },
    /// The SL reported that a batch failed a settlement check.
    CheckFailed {
        /// The batch.
        batch: BatchNumber,
        /// The SL's reason.
        reason: String,
    },
}

type BatchAlteration = Box<dyn FnOnce(&mut SealedBatch) + Send>;

/// A chain node's protocol half: sequencer + operator + SL view, driven by events with the time
/// passed in. Shells (simulator, devnet, chain process) own transport, storage and the clock and
/// apply the returned [`ChainEffect`]s.
pub struct ChainRole {
    seq: Sequencer,
    operator: Operator,
    view: SlMirror,
    tree: AggregationConfig,
    alter_next: Option<BatchAlteration>,
    /// Reverts of each other chain seen on the SL, in order: (first reverted batch, first
    /// reverted block). Their count is the source's epoch ([`ChainRole::import`]).
    source_reverts: BTreeMap<ChainId, Vec<(BatchNumber, BlockNumber)>>,
    /// Imports the SL found contradicted by their source's batches: (source, height, root).
    /// Never imported again.
    contradicted: BTreeSet<(ChainId, BlockNumber, B256)>,
    /// The next SL block whose events [`ChainRole::observe_sl_block`] expects (SL heights start
    /// at 1), and the blocks received past a gap, held until it is filled.
    sl_next: u64,
    sl_held: BTreeMap<u64, Vec<SlEvent>>,
}

impl std::fmt::Debug for ChainRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainRole")
            .field("chain", &self.id())
            .field("head", &self.seq.head().number)
            .field("last_batch", &self.seq.last_batch())
            .finish_non_exhaustive()
    }
}

impl ChainRole {
    /// A chain node from its sequencer and operator (of the same chain), under the SL's
    /// aggregation tree configuration (default: no tree).
    pub fn new(
        seq: Sequencer,
        operator: Operator,
        tree: AggregationConfig,
    ) -> Result<Self, DriverError> {
        let (chain, operator_chain) = (seq.config().chain_id, operator.config().chain_id);
        if chain != operator_chain {
            return Err(DriverError::ChainMismatch {
                sequencer: chain,
                operator: operator_chain,
            });
        }
        Ok(Self {
            seq,
            operator,
            view: SlMirror::new(chain),
            tree,
            alter_next: None,
            source_reverts: BTreeMap::new(),
            contradicted: BTreeSet::new(),
            sl_next: 1,
            sl_held: BTreeMap::new(),
        })
    }

    /// The chain's id.
    pub fn id(&self) -> ChainId {
        self.seq.config().chain_id
    }
    /// The sequencer core.
    pub fn seq(&self) -> &Sequencer {
        &self.seq
    }
    /// The sequencer core, mutably (restore after a crash, fault injection, RPC-side queries).
    pub fn seq_mut(&mut self) -> &mut Sequencer {
        &mut self.seq
    }
    /// The operator core.
    pub fn operator(&self) -> &Operator {
        &self.operator
    }
    /// The operator core, mutably (configuration, fault injection).
    pub fn operator_mut(&mut self) -> &mut Operator {
        &mut self.operator
    }
    /// The operator's view of the SL.
    pub fn view(&self) -> &SlMirror {
        &self.view
    }

    /// Fault injection for simulators: the operator is handed the next sealed batch altered
    /// by `alter` (a faulty or malicious operator); everyone else sees the batch as sealed.
    pub fn alter_next_batch(&mut self, alter: impl FnOnce(&mut SealedBatch) + Send + 'static) {
        self.alter_next = Some(Box::new(alter));
    }

    /// Time passed: the sequencer produces the blocks (and batches) due by `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Result<Vec<ChainEffect>, DriverError> {
        let outs = self.seq.handle(SequencerInput::Tick { now_ms });
        self.absorb(outs)
    }

    /// A raw transaction for the pool; the answer is in the returned effects.
    pub fn submit_tx(&mut self, raw: alloy_primitives::Bytes) -> Vec<ChainEffect> {
        let outs = self.seq.handle(SequencerInput::SubmitTx { raw });
        outs.into_iter().map(ChainEffect::Output).collect()
    }

    /// A transaction already decoded and recovered (see `Sequencer::submit_recovered`).
    pub fn submit_recovered(&mut self, tx: braid_execution::RecoveredTx) -> Vec<ChainEffect> {
        vec![ChainEffect::Output(self.seq.submit_recovered(tx))]
    }

    /// A root to import in the next block. `source_epoch` is how many reverts of the source
    /// the sender had seen when it built the import (`braid_relayer::Relayer::source_epoch`;
    /// `None`: not said, taken as current). An import that a revert the sender had not seen
    /// voided is refused ([`ChainEffect::ImportRefused`]): it names a block or batch that no
    /// longer exists, and would make the batch holding it wait for an extension proof that
    /// can never come. The sequencer's own refusals come back as
    /// `Output(SequencerOutput::ImportRejected)`.
    ///
    /// `sl` is the chain's SL node: an `aggregated` import it says can never settle is refused
    /// too ([`ImportRefusal::UnsettleableAggregated`]), so a batch never waits on it.
    pub fn import(
        &mut self,
        root: ImportedRoot,
        source_epoch: Option<u64>,
        sl: &impl SlNode,
    ) -> Vec<ChainEffect> {
        let unsettleable = || {
            sl.aggregated_import_unsettleable(self.id(), &root)
                .then_some(ImportRefusal::UnsettleableAggregated {
                    checkpoint: root.sourceHeight,
                })
        };
        if let Some(reason) = self
            .voided_import(&root, source_epoch)
            .or_else(unsettleable)
        {
            return vec![ChainEffect::ImportRefused {
                import: root,
                reason,
            }];
        }
        let outs = self.seq.handle(SequencerInput::Import(root));
        outs.into_iter().map(ChainEffect::Output).collect()
    }

    /// Whether a revert of `import`'s source after epoch `source_epoch` voided it.
    fn voided_import(
        &self,
        import: &ImportedRoot,
        source_epoch: Option<u64>,
    ) -> Option<ImportRefusal> {
        let key = (import.sourceChain, import.sourceHeight, import.root);
        if self.contradicted.contains(&key) {
            return Some(ImportRefusal::Contradicted {
                source_chain: import.sourceChain,
                height: import.sourceHeight,
            });
        }
        let epoch = usize::try_from(source_epoch?).unwrap_or(usize::MAX);
        let me = self.id();
        let source = import.sourceChain;
        let reverts = self.source_reverts.get(&source)?;
        reverts
            .iter()
            .enumerate()
            .skip(epoch)
            .find(|(_, (from, first_block))| {
                import.voided_by(source, *from, *first_block)
                    || self.tree.import_voided_by(me, import, source, *first_block)
            })
            .map(
                |(i, (from, first_block))| ImportRefusal::VoidedBySourceRevert {
                    source_chain: source,
                    height: import.sourceHeight,
                    sent_at_epoch: epoch as u64,
                    revert: i as u64 + 1,
                    from_batch: *from,
                    first_block: *first_block,
                },
            )
    }

    /// Hands what the sequencer produced to the operator and turns it into effects (for
    /// shells that drive the sequencer themselves, e.g. to inject an equivocation).
    pub fn absorb(&mut self, outs: Vec<SequencerOutput>) -> Result<Vec<ChainEffect>, DriverError> {
        let closes = outs.iter().find_map(|o| match o {
            SequencerOutput::BatchSealed(b) => Some(b.header.clone()),
            _ => None,
        });
        let mut effects = Vec::with_capacity(outs.len());
        for out in outs {
            match out {
                SequencerOutput::BlockSealed(block) => effects.push(ChainEffect::BlockSealed {
                    block,
                    closes: closes.clone(),
                }),
                SequencerOutput::BatchSealed(batch) => {
                    let altered = match self.alter_next.take() {
                        Some(alter) => {
                            let mut copy = (*batch).clone();
                            alter(&mut copy);
                            self.operator.batch_sealed(copy)?;
                            true
                        }
                        None => {
                            self.operator.batch_sealed((*batch).clone())?;
                            false
                        }
                    };
                    effects.push(ChainEffect::BatchSealed { batch, altered });
                }
                other => effects.push(ChainEffect::Output(other)),
            }
        }
        Ok(effects)
    }

    /// Follows one SL event routed to this chain ([`crate::route::operator_concerns`]), in SL
    /// order: deposits go to the sequencer, a source's revert dooms the blocks holding its void
    /// imports, and the operator's decisions (roll back, finalize) are applied.
    pub fn observe_sl(
        &mut self,
        e: &SlEvent,
        sl: &impl SlNode,
    ) -> Result<Vec<ChainEffect>, DriverError> {
        let me = self.id();
        self.view.observe(e);
        let mut effects = Vec::new();
        match e {
            SlEvent::DepositQueued(d) => {
                if d.chainId == me {
                    let outs = self.seq.handle(SequencerInput::Deposit(d.clone()));
                    effects.extend(outs.into_iter().map(ChainEffect::Output));
                }
                return Ok(effects);
            }
            SlEvent::BatchesReverted {
                chain,
                from,
                first_block,
                ..
            } if *chain == me => {
                if let SlEvent::BatchesReverted {
                    cause:
                        RevertCause::Contradicted {
                            source_chain,
                            height,
                            root,
                        },
                    ..
                } = e
                {
                    self.contradicted.insert((*source_chain, *height, *root));
                }
            }
            SlEvent::BatchesReverted {
                chain,
                from,
                first_block,
                ..
            } if *chain != me => {
                self.source_reverts
                    .entry(*chain)
                    .or_default()
                    .push((*from, *first_block));
                effects.extend(self.source_reverted(*chain, *from, *first_block)?);
            }
            _ => {}
        }
        for action in self.operator.observe_sl(e) {
            match action {
                OperatorAction::RevertSequencer {
                    last_valid_batch,
                    invalid_imports,
                    cause,
                } => {
                    let outcome = self
                        .seq
                        .revert_to(last_valid_batch, |i| {
                            invalid_imports.contains(i) || sl.aggregated_import_unsettleable(me, i)
                        })
                        .map_err(|error| DriverError::Rollback {
                            chain: me,
                            last_valid_batch,
                            error,
                        })?;
                    effects.push(ChainEffect::RolledBack {
                        outcome: Box::new(outcome),
                        cause: RollbackCause::Reverted(cause),
                    });
                }
                OperatorAction::Finalized { through } => {
                    self.seq.finalize_through(through);
                    effects.push(ChainEffect::Finalized { through });
                }
                OperatorAction::CheckFailed { batch, reason } => {
                    effects.push(ChainEffect::CheckFailed { batch, reason })
                }
            }
        }
        Ok(effects)
    }

    /// Re-reads an SL event of the chain's history after a restart: the view and the operator
    /// follow it and finality is re-applied to the sequencer, but roll-backs are not (they
    /// happened before the node stopped and its store holds their outcome). Deposits are
    /// handed to the sequencer again (its queue of pending deposits was not persisted).
    pub fn replay_sl(&mut self, e: &SlEvent) {
        self.view.observe(e);
        if let SlEvent::DepositQueued(d) = e {
            // the pool of pending deposits was memory only; included ones are ignored
            self.seq.handle(SequencerInput::Deposit(d.clone()));
            return;
        }
        for action in self.operator.observe_sl(e) {
            if let OperatorAction::Finalized { through } = action {
                self.seq.finalize_through(through);
            }
        }
    }

    /// Follows the events routed to this chain of SL block `height` (the whole block's, in
    /// order), for shells whose SL feed may lose or reorder blocks: blocks are applied in height
    /// order; one past a gap is held until the gap is filled, and [`ChainEffect::SlGap`] asks
    /// the shell to fetch the missing blocks again. A block already applied is ignored.
    pub fn observe_sl_block(
        &mut self,
        height: u64,
        events: Vec<SlEvent>,
        sl: &impl SlNode,
    ) -> Result<Vec<ChainEffect>, DriverError> {
        let mut effects = Vec::new();
        if height < self.sl_next {
            return Ok(effects);
        }
        self.sl_held.insert(height, events);
        while let Some(events) = self.sl_held.remove(&self.sl_next) {
            for e in &events {
                effects.extend(self.observe_sl(e, sl)?);
            }
            self.sl_next += 1;
        }
        if let Some((first_held, _)) = self.sl_held.first_key_value() {
            effects.push(ChainEffect::SlGap {
                from: self.sl_next,
                to: first_held - 1,
            });
        }
        Ok(effects)
    }

    /// `source` reverted its batches from `from` (its blocks from `first_block`): roots of the
    /// void blocks that this chain imported in blocks the SL does not hold yet (its open batch,
    /// or sealed batches not executed) are void, and the SL's cascade cannot reach the open
    /// batch. Blocks from the first such import on are doomed ([`ChainEffect::Doomed`]); the
    /// open batch is rolled back at once (its transactions re-pooled, the void imports dropped,
    /// also from the import queue). Doomed sealed batches are reverted by the SL.
    /// Idempotent: shells that see the revert before its event reaches the operator (an
    /// in-process SL) may call it early.
    pub fn source_reverted(
        &mut self,
        source: ChainId,
        from: BatchNumber,
        first_block: BlockNumber,
    ) -> Result<Vec<ChainEffect>, DriverError> {
        let me = self.id();
        if source == me {
            return Ok(vec![]);
        }
        let tree = &self.tree;
        let void = |i: &ImportedRoot| {
            i.voided_by(source, from, first_block)
                || tree.import_voided_by(me, i, source, first_block)
        };
        let seq = &self.seq;
        let executed = self.view.last_executed();
        let sealed = (executed + 1..=seq.last_batch())
            .filter_map(|b| seq.unfinalized_batch_blocks(b))
            .flatten();
        let doomed = sealed
            .chain(seq.open_batch().iter())
            .find(|b| b.imports.iter().any(void))
            .map(|b| b.header.number);
        let mut effects = Vec::new();
        if let Some(first) = doomed {
            effects.push(ChainEffect::Doomed {
                source,
                first_block: first,
            });
        }
        let outcome = self
            .seq
            .drop_void_imports(void)
            .map_err(|error| DriverError::Rollback {
                chain: me,
                last_valid_batch: self.seq.last_batch(),
                error,
            })?;
        if let Some(outcome) = outcome {
            effects.push(ChainEffect::RolledBack {
                outcome: Box::new(outcome),
                cause: RollbackCause::VoidImports { source },
            });
        }
        Ok(effects)
    }

    /// The operator's SL calls for now, read from this chain's view of the SL; `sl` answers the
    /// emergency-exit question of a chain under the aggregation tree.
    pub fn operator_tick(
        &mut self,
        sl: &impl SlNode,
        proofs: &impl ExtensionProofs,
    ) -> Vec<SlCall> {
        if self.operator.config().settled_by_tree {
            let me = self.id();
            let open = self
                .view
                .unproven()
                .filter(|n| sl.aggregation_exit_open(me, *n))
                .collect();
            self.view.set_exit_open(open);
        }
        self.operator.tick(&self.view, proofs)
    }
}
