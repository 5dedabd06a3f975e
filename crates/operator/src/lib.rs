//! Braid's operator core: a chain's batch submitter, as a sans-IO state machine.
//!
//! The operator takes the batches its chain's sequencer seals ([`Operator::batch_sealed`]) and,
//! on every [`Operator::tick`], returns the settlement-layer calls to submit now, read from a view
//! of the SL ([`SlView`], implemented by [`SettlementLayer`]):
//! - commit the batches after the SL's `last_committed`, in order, up to
//!   `max_commits_ahead` of them in flight at once, so a chain that seals batches faster than
//!   the SL produces blocks (or works off a backlog after a stall) still catches up;
//! - prove every committed batch, in order;
//! - request execution of every proven batch once an extension proof is available for each of
//!   its `precommit` imports ([`ExtensionProofs`]; `braid-driver` implements it over a relayer
//!   core that follows the source chains).
//!
//! A call is not repeated until the SL has produced `resend_after_blocks` blocks since it was
//! issued (it is either reflected in the SL's state by then, or was refused and is issued again). The shell signs the
//! calls with the operator key and the SL nonces.
//!
//! It also follows the SL's events ([`Operator::observe_sl`]): when its chain's batches are
//! reverted it forgets them and, at the end of that SL block (so that cascades in the same block
//! are known), tells the shell to roll the sequencer back
//! ([`OperatorAction::RevertSequencer`], for `Sequencer::revert_to`) together with the imports
//! that became invalid because their source was reverted; when its batches execute it tells the
//! shell they are final ([`OperatorAction::Finalized`], for `Sequencer::finalize_through`).

use std::collections::BTreeMap;

use alloy_primitives::Bytes;
use braid_merkle::ExtensionProof;
use braid_primitives::{BatchNumber, BlockNumber, ChainId, ImportKind, ImportedRoot};
use braid_sequencer::SealedBatch;
use braid_settlement::{BatchStatus, RevertCause, SettlementLayer, SlCall, SlEvent};

/// Errors of the operator: inputs it rejects (they change no state).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OperatorError {
    /// A batch of another chain.
    #[error("batch of chain {got} given to the operator of chain {expected}")]
    WrongChain {
        /// The operator's chain.
        expected: ChainId,
        /// The batch's chain.
        got: ChainId,
    },
    /// A batch that does not follow the batches the operator holds.
    #[error("batch {got} does not follow batch {last} of chain {chain}")]
    OutOfOrder {
        /// The chain.
        chain: ChainId,
        /// The last batch held (or final).
        last: BatchNumber,
        /// The offered batch.
        got: BatchNumber,
    },
}

/// Operator parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorConfig {
    /// The chain whose batches this operator submits.
    pub chain_id: ChainId,
    /// Whether to prove committed batches and request their execution (`false`: commit only).
    pub prove_and_execute: bool,
    /// The chain settles optimistically (seed 004): its batches are proven by final proposals
    /// of any bonded proposer, so the operator does not send `proveBatch`.
    pub settled_by_proposals: bool,
    /// The chain is under the shared aggregation tree (seed 001): its batches are proven by the
    /// tree's roots, so the operator sends `proveBatch` only through the emergency exit
    /// ([`SlView::aggregation_exit_open`]).
    pub settled_by_tree: bool,
    /// The aggregation tree's chains (in tree order) and blocks per checkpoint, if there is a
    /// tree: a revert of a tree chain voids the `aggregated` imports of node hashes over its
    /// void blocks ([`braid_primitives::aggregation::import_voided_by`]), and a re-sequenced
    /// batch must not import them again.
    pub tree: Option<(Vec<ChainId>, u64)>,
    /// SL blocks to wait before issuing a call again that has not shown its effect. 1 suits an
    /// operator that reads the SL right before each SL block (in-process); with network latency
    /// between them use more, or the call is sent twice (the SL refuses the copy).
    pub resend_after_blocks: u64,
    /// At most this many consecutive batches past the SL's `last_committed` are committed
    /// before the SL shows them (1: one commit per SL block, which a chain sealing faster than
    /// the SL produces blocks never catches up with).
    pub max_commits_ahead: u64,
}

/// Default of [`OperatorConfig::max_commits_ahead`].
pub const DEFAULT_MAX_COMMITS_AHEAD: u64 = 8;

impl OperatorConfig {
    /// An operator for `chain_id` that commits, proves and requests execution, and re-issues a
    /// call after one SL block without effect.
    pub fn new(chain_id: ChainId) -> Self {
        Self {
            chain_id,
            prove_and_execute: true,
            settled_by_proposals: false,
            settled_by_tree: false,
            tree: None,
            resend_after_blocks: 1,
            max_commits_ahead: DEFAULT_MAX_COMMITS_AHEAD,
        }
    }
}

/// Where a committed batch is on the SL, as the operator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchProgress {
    /// Lifecycle status.
    pub status: BatchStatus,
    /// Whether execution was requested.
    pub execute_requested: bool,
}

/// A read-only view of the settlement layer (the in-process [`SettlementLayer`], or facts a
/// shell fetched from a remote one).
pub trait SlView {
    /// Current SL height.
    fn height(&self) -> u64;
    /// The chain's last committed batch (0: none); `None` if the chain is not registered.
    fn last_committed(&self, chain: ChainId) -> Option<BatchNumber>;
    /// A committed batch's progress; `None` if not committed (or reverted).
    fn batch_progress(&self, chain: ChainId, batch: BatchNumber) -> Option<BatchProgress>;
    /// Whether a chain settled by the aggregation tree may prove `batch` alone now (the
    /// emergency exit is open: no tree root came for the aggregator timeout).
    fn aggregation_exit_open(&self, _chain: ChainId, _batch: BatchNumber) -> bool {
        false
    }
}

impl SlView for SettlementLayer {
    fn height(&self) -> u64 {
        SettlementLayer::height(self)
    }
    fn last_committed(&self, chain: ChainId) -> Option<BatchNumber> {
        self.chain(chain).map(|c| c.last_committed)
    }
    fn batch_progress(&self, chain: ChainId, batch: BatchNumber) -> Option<BatchProgress> {
        self.batch(chain, batch).map(|b| BatchProgress {
            status: b.status.clone(),
            execute_requested: b.execute_request.is_some(),
        })
    }
    fn aggregation_exit_open(&self, chain: ChainId, batch: BatchNumber) -> bool {
        SettlementLayer::aggregation_exit_open(self, chain, batch)
    }
}

/// A source of extension proofs for `precommit` imports.
pub trait ExtensionProofs {
    /// Proof that `import`'s LocalRoot is a prefix of the ChainBatchRoot of the source batch
    /// holding the imported block; `None` until that batch is sealed and known.
    fn precommit_extension(&self, import: &ImportedRoot) -> Option<ExtensionProof>;
}

/// What the operator asks the shell to do besides submitting calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorAction {
    /// The SL reverted the chain's batches after `last_valid_batch`: roll the sequencer back
    /// (`Sequencer::revert_to(last_valid_batch, |i| invalid_imports.contains(i))`).
    RevertSequencer {
        /// The last batch still valid.
        last_valid_batch: BatchNumber,
        /// Imports of the reverted batches whose source block or batch was reverted: they must
        /// not be imported again.
        invalid_imports: Vec<ImportedRoot>,
        /// Why the SL reverted.
        cause: RevertCause,
    },
    /// Batches up to `through` executed and are final (`Sequencer::finalize_through`).
    Finalized {
        /// The last executed batch.
        through: BatchNumber,
    },
    /// A batch failed a settlement check that cannot become true: it can never execute and
    /// must be reverted (a decision left to the shell or a human).
    CheckFailed {
        /// The batch.
        batch: BatchNumber,
        /// Why.
        reason: String,
    },
}

/// The SL step a call advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Commit,
    Prove,
    Execute,
}

#[derive(Debug, Clone)]
struct Held {
    batch: SealedBatch,
    /// Input counter when the batch was sealed.
    sealed_seq: u64,
}

/// A revert of another chain, remembered to tell which imports it invalidated.
#[derive(Debug, Clone, Copy)]
struct SourceRevert {
    chain: ChainId,
    from: BatchNumber,
    first_block: BlockNumber,
    seen_seq: u64,
}

impl SourceRevert {
    /// Whether the revert voids `import` of chain `me` (`tree`: the aggregation tree's chains
    /// and checkpoint length).
    fn invalidates(
        &self,
        me: ChainId,
        tree: Option<&(Vec<ChainId>, u64)>,
        import: &ImportedRoot,
    ) -> bool {
        import.voided_by(self.chain, self.from, self.first_block)
            || tree.is_some_and(|(chains, k)| {
                let position = |c| braid_primitives::aggregation::tree_position(chains, c);
                match (position(me), position(self.chain)) {
                    (Some(i), Some(s)) => braid_primitives::aggregation::import_voided_by(
                        i,
                        import,
                        s,
                        *k,
                        self.first_block,
                    ),
                    _ => false,
                }
            })
    }
}

/// The operator state machine.
#[derive(Debug, Clone)]
pub struct Operator {
    config: OperatorConfig,
    /// Sealed batches not known to be executed.
    batches: BTreeMap<BatchNumber, Held>,
    /// Last batch known executed (0: none).
    last_executed: BatchNumber,
    /// Calls issued and the SL height they were issued at.
    issued: BTreeMap<(BatchNumber, Stage), u64>,
    source_reverts: Vec<SourceRevert>,
    /// An own revert waiting for the end of its SL block (see [`Operator::observe_sl`]).
    pending_revert: Option<PendingRevert>,
    /// Inputs handled so far (orders batches and reverts).
    seq: u64,
}

/// An own revert seen in an SL block whose end has not been seen yet.
#[derive(Debug, Clone)]
struct PendingRevert {
    from: BatchNumber,
    cause: RevertCause,
    dropped: BTreeMap<BatchNumber, Held>,
    /// Imports the SL found contradicted by their source's batches (`RevertCause::Contradicted`):
    /// they can never settle and must not be imported again.
    contradicted: Vec<(ChainId, BlockNumber, alloy_primitives::B256)>,
}

impl Operator {
    /// An operator for `config.chain_id` holding no batches.
    pub fn new(config: OperatorConfig) -> Self {
        Self {
            config,
            batches: BTreeMap::new(),
            last_executed: 0,
            issued: BTreeMap::new(),
            source_reverts: Vec::new(),
            pending_revert: None,
            seq: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &OperatorConfig {
        &self.config
    }

    /// Sets whether to prove and request execution (`false`: commit only).
    pub fn set_prove_and_execute(&mut self, on: bool) {
        self.config.prove_and_execute = on;
    }

    /// Sealed batches not known to be executed, by number.
    pub fn batches(&self) -> impl Iterator<Item = &SealedBatch> + '_ {
        self.batches.values().map(|h| &h.batch)
    }

    /// The last batch known to be executed (0: none).
    pub fn last_executed(&self) -> BatchNumber {
        self.last_executed
    }

    /// Takes a batch the sequencer sealed. It must be the chain's and follow the batches held
    /// (a batch already held is replaced: the sequencer re-sealed it after a revert).
    pub fn batch_sealed(&mut self, batch: SealedBatch) -> Result<(), OperatorError> {
        let chain = self.config.chain_id;
        if batch.header.chainId != chain {
            return Err(OperatorError::WrongChain {
                expected: chain,
                got: batch.header.chainId,
            });
        }
        let last = self
            .batches
            .last_key_value()
            .map_or(self.last_executed, |(n, _)| *n);
        let n = batch.header.number;
        if n <= self.last_executed || n > last + 1 {
            return Err(OperatorError::OutOfOrder {
                chain,
                last,
                got: n,
            });
        }
        self.seq += 1;
        // a re-sealed batch replaces the old one and everything after it
        self.batches.split_off(&n);
        self.issued.retain(|(b, _), _| *b < n);
        self.batches.insert(
            n,
            Held {
                batch,
                sealed_seq: self.seq,
            },
        );
        Ok(())
    }

    /// Follows an SL event.
    pub fn observe_sl(&mut self, ev: &SlEvent) -> Vec<OperatorAction> {
        self.seq += 1;
        let me = self.config.chain_id;
        match ev {
            SlEvent::BatchExecuted { chain, batch, .. } if *chain == me => {
                if *batch <= self.last_executed {
                    return vec![];
                }
                self.last_executed = *batch;
                self.batches = self.batches.split_off(&(batch + 1));
                self.issued.retain(|(b, _), _| *b > *batch);
                vec![OperatorAction::Finalized { through: *batch }]
            }
            SlEvent::BatchCheckFailed {
                chain,
                batch,
                reason,
            } if *chain == me => vec![OperatorAction::CheckFailed {
                batch: *batch,
                reason: reason.clone(),
            }],
            SlEvent::BatchesReverted {
                chain,
                from,
                first_block,
                cause,
                ..
            } => {
                if *chain != me {
                    self.source_reverts.push(SourceRevert {
                        chain: *chain,
                        from: *from,
                        first_block: *first_block,
                        seen_seq: self.seq,
                    });
                    return vec![];
                }
                let dropped = self.batches.split_off(from);
                self.issued.retain(|(b, _), _| *b < *from);
                let contradicted = match cause {
                    RevertCause::Contradicted {
                        source_chain,
                        height,
                        root,
                    } => vec![(*source_chain, *height, *root)],
                    _ => vec![],
                };
                // The roll-back waits for the end of this SL block: a cascade in the same block
                // may still void imports of the dropped batches (its event comes later).
                match &mut self.pending_revert {
                    Some(p) => {
                        p.from = p.from.min(*from);
                        p.dropped.extend(dropped);
                        p.contradicted.extend(contradicted);
                    }
                    None => {
                        self.pending_revert = Some(PendingRevert {
                            from: *from,
                            cause: *cause,
                            dropped,
                            contradicted,
                        })
                    }
                }
                vec![]
            }
            SlEvent::SlBlock { .. } => {
                let Some(p) = self.pending_revert.take() else {
                    return vec![];
                };
                let mut invalid_imports: Vec<ImportedRoot> = vec![];
                for held in p.dropped.values() {
                    for import in held.batch.blocks.iter().flat_map(|b| b.imports.iter()) {
                        let (me, tree) = (self.config.chain_id, self.config.tree.as_ref());
                        let void = self.source_reverts.iter().any(|r| {
                            r.seen_seq > held.sealed_seq && r.invalidates(me, tree, import)
                        }) || p.contradicted.iter().any(|(c, h, r)| {
                            import.sourceChain == *c
                                && import.sourceHeight == *h
                                && import.root == *r
                        });
                        if void && !invalid_imports.contains(import) {
                            invalid_imports.push(import.clone());
                        }
                    }
                }
                vec![OperatorAction::RevertSequencer {
                    last_valid_batch: p.from.saturating_sub(1),
                    invalid_imports,
                    cause: p.cause,
                }]
            }
            _ => vec![],
        }
    }

    /// The SL calls to submit now, in order.
    pub fn tick(&mut self, sl: &impl SlView, proofs: &impl ExtensionProofs) -> Vec<SlCall> {
        let chain = self.config.chain_id;
        let Some(last_committed) = sl.last_committed(chain) else {
            return vec![];
        };
        let height = sl.height();
        let mut calls = vec![];
        let mut issue = Vec::new();
        // the next batch to commit: past the SL's view, and past commits issued and in flight
        let mut next_commit = last_committed + 1;
        let ahead = self.config.max_commits_ahead.max(1);
        // the SL takes commits in batch (and nonce) order: once the first one is due again (lost
        // or refused), the ones after it failed too, and the whole window goes out again
        let wait = self.config.resend_after_blocks.max(1);
        let resend_window = self
            .issued
            .get(&(next_commit, Stage::Commit))
            .is_none_or(|at| height >= at.saturating_add(wait));
        for (n, held) in &self.batches {
            let fresh = |stage| {
                self.issued
                    .get(&(*n, stage))
                    .is_none_or(|at| height >= at.saturating_add(wait))
            };
            match sl.batch_progress(chain, *n) {
                // commits go in batch order, at most `ahead` past the SL's view
                None if *n == next_commit && *n <= last_committed + ahead => {
                    if resend_window || !self.issued.contains_key(&(*n, Stage::Commit)) {
                        let b = &held.batch;
                        calls.push(SlCall::CommitBatch {
                            header: b.header.clone(),
                            imports: b.blocks.iter().flat_map(|b| b.imports.clone()).collect(),
                            blocks: b.blocks.clone(),
                        });
                        issue.push((*n, Stage::Commit));
                    }
                    next_commit += 1;
                }
                Some(p) if self.config.prove_and_execute => match p.status {
                    BatchStatus::Committed
                        if !self.config.settled_by_proposals
                            && (!self.config.settled_by_tree
                                || sl.aggregation_exit_open(chain, *n))
                            && fresh(Stage::Prove) =>
                    {
                        calls.push(SlCall::ProveBatch {
                            chain_id: chain,
                            batch: *n,
                            proof: Bytes::new(),
                        });
                        issue.push((*n, Stage::Prove));
                    }
                    BatchStatus::Proven if !p.execute_requested && fresh(Stage::Execute) => {
                        if let Some(extension_proofs) = Self::extensions(&held.batch, proofs) {
                            calls.push(SlCall::ExecuteBatch {
                                chain_id: chain,
                                batch: *n,
                                extension_proofs,
                            });
                            issue.push((*n, Stage::Execute));
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        for k in issue {
            self.issued.insert(k, height);
        }
        calls
    }

    /// One extension proof per `precommit` or `qc` import of `batch`, in import order, if all exist.
    fn extensions(
        batch: &SealedBatch,
        proofs: &impl ExtensionProofs,
    ) -> Option<Vec<ExtensionProof>> {
        batch
            .blocks
            .iter()
            .flat_map(|b| b.imports.iter())
            .filter(|i| i.import_kind().is_ok_and(ImportKind::is_block_root))
            .map(|i| proofs.precommit_extension(i))
            .collect()
    }
}
