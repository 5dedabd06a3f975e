//! The settlement layer as a chain's operator sees it: rebuilt from the SL events it received.

use std::collections::{BTreeMap, BTreeSet};

use braid_operator::{BatchProgress, SlView};
use braid_primitives::{BatchNumber, ChainId};
use braid_settlement::{BatchStatus, SlEvent};

/// One chain's view of the SL, built only from the events routed to it
/// ([`crate::route::operator_concerns`]), in SL order. Every shell gives its operator this view,
/// so an operator decides on what it was told, never on a direct read of the SL's state.
#[derive(Debug, Clone, Default)]
pub struct SlMirror {
    chain: ChainId,
    height: u64,
    registered: bool,
    last_committed: BatchNumber,
    last_executed: BatchNumber,
    batches: BTreeMap<BatchNumber, BatchProgress>,
    /// Batches the SL would let the chain prove alone (aggregation emergency exit), as last
    /// asked of the operator's SL node.
    exit_open: BTreeSet<BatchNumber>,
}

impl SlMirror {
    /// An empty view for `chain`.
    pub fn new(chain: ChainId) -> Self {
        Self {
            chain,
            ..Self::default()
        }
    }

    /// Follows one SL event (events of other chains change nothing but the height).
    pub fn observe(&mut self, e: &SlEvent) {
        let me = self.chain;
        match e {
            SlEvent::SlBlock { height, .. } => self.height = self.height.max(*height),
            SlEvent::ChainRegistered { chain } if *chain == me => self.registered = true,
            SlEvent::BatchCommitted { chain, batch, .. } if *chain == me => {
                self.last_committed = self.last_committed.max(*batch);
                self.batches.insert(
                    *batch,
                    BatchProgress {
                        status: BatchStatus::Committed,
                        execute_requested: false,
                    },
                );
            }
            SlEvent::BatchProven { chain, batch, .. } if *chain == me => {
                if let Some(p) = self.batches.get_mut(batch) {
                    p.status = BatchStatus::Proven;
                }
            }
            SlEvent::ExecutionRequested { chain, batch, .. } if *chain == me => {
                if let Some(p) = self.batches.get_mut(batch) {
                    p.execute_requested = true;
                }
            }
            SlEvent::BatchExecuted { chain, batch, .. } if *chain == me => {
                self.last_executed = self.last_executed.max(*batch);
                if let Some(p) = self.batches.get_mut(batch) {
                    p.status = BatchStatus::Executed;
                }
            }
            SlEvent::BatchesReverted { chain, from, .. } if *chain == me => {
                self.batches.split_off(from);
                self.exit_open.retain(|b| b < from);
                self.last_committed = self.last_committed.min(from.saturating_sub(1));
            }
            _ => {}
        }
    }

    /// The chain's last executed batch, as far as this view was told.
    pub fn last_executed(&self) -> BatchNumber {
        self.last_executed
    }

    /// The chain's committed batches that are not executed, oldest first.
    pub fn unexecuted(&self) -> impl Iterator<Item = BatchNumber> + '_ {
        self.batches
            .iter()
            .filter(|(_, p)| p.status != BatchStatus::Executed)
            .map(|(n, _)| *n)
    }

    /// Committed batches waiting for a proof (status `Committed`).
    pub fn unproven(&self) -> impl Iterator<Item = BatchNumber> + '_ {
        self.batches
            .iter()
            .filter(|(_, p)| p.status == BatchStatus::Committed)
            .map(|(n, _)| *n)
    }

    /// Records which committed batches the SL node says may be proven alone now.
    pub fn set_exit_open(&mut self, open: BTreeSet<BatchNumber>) {
        self.exit_open = open;
    }
}

impl SlView for SlMirror {
    fn height(&self) -> u64 {
        self.height
    }
    fn last_committed(&self, _chain: ChainId) -> Option<BatchNumber> {
        self.registered.then_some(self.last_committed)
    }
    fn batch_progress(&self, _chain: ChainId, batch: BatchNumber) -> Option<BatchProgress> {
        self.batches.get(&batch).cloned()
    }
    fn aggregation_exit_open(&self, _chain: ChainId, batch: BatchNumber) -> bool {
        self.exit_open.contains(&batch)
    }
}
