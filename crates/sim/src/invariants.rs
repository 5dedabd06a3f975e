//! Invariant checkers, run outside the nodes after every event.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{B256, U256};
use braid_primitives::{BatchNumber, BlockNumber, ChainId, MessageId};
use braid_sequencer::Sequencer;
use braid_settlement::SettlementLayer;

/// An execution seen on a destination: its block and, when the simulator knows the message,
/// its leaf hash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Execution {
    pub block: BlockNumber,
    pub leaf: Option<B256>,
}

/// The outcome of checking one execution.
enum Check {
    Holds,
    /// An execution of an equivocated block's message, not settled: tracked until undone.
    Phantom,
    Fails(Failure),
}

/// A failed invariant: its name and what was seen.
pub(crate) type Failure = (&'static str, String);

/// What the checkers remember between events.
#[derive(Debug, Default)]
pub(crate) struct Invariants {
    /// Executions on each destination's current chain.
    pub executed: BTreeMap<ChainId, BTreeMap<MessageId, Execution>>,
    /// Batches the SL executed.
    pub executed_batches: BTreeSet<(ChainId, BatchNumber)>,
    /// The SL's total value (re-based when a chain registers).
    pub sl_value: U256,
    /// A failure seen while routing an event (double execution, executed batch reverted).
    pub pending: Option<Failure>,
    /// Per chain, the first block the SL voided (a revert) that the chain's sequencer has not
    /// rolled back yet: executions from there on are void and wait for the rollback (the SL
    /// event reaches each chain's operator with its own latency).
    pub voided: BTreeMap<ChainId, BlockNumber>,
    /// Leaves of messages that only an equivocating sequencer's discarded block held (the
    /// relayer saw that block, the chain's batches hold another at its height). A destination
    /// that imported the block may execute them; it must not *keep* them: the SL finds the
    /// import contradicted by the source's batch and reverts the importer. Until the
    /// destination block settles or the run ends such an execution is tracked, not a failure.
    pub phantom_leaves: BTreeSet<B256>,
    /// Executions of phantom messages not rolled back yet (re-checked as the SL moves).
    phantoms: BTreeSet<(ChainId, MessageId)>,
    /// Executions recorded since the last check (checked incrementally).
    unchecked: Vec<(ChainId, MessageId)>,
    /// Each destination's last settled block at the last check.
    settled_block: BTreeMap<ChainId, BlockNumber>,
    /// Per chain (in id order), what its state looked like at the last check: the head's
    /// number, parent and state root, and the message tree's size. A chain's state only
    /// changes with its head, so an unchanged fingerprint needs no recount.
    seen_chains: Vec<(ChainId, ChainFingerprint)>,
    /// The SL height at the last check (the SL's state only changes in its blocks).
    seen_sl_height: Option<u64>,
}

/// What identifies a chain's state between two checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChainFingerprint {
    number: BlockNumber,
    parent: B256,
    state_root: B256,
    outbox_len: u64,
}

impl ChainFingerprint {
    fn of(seq: &Sequencer) -> Self {
        let head = seq.head();
        Self {
            number: head.number,
            parent: head.parentHash,
            state_root: head.stateRoot,
            outbox_len: seq.state().outbox().len(),
        }
    }
}

impl Invariants {
    /// Records an execution on `dest`; a second execution of the same id is a failure.
    pub fn executed(&mut self, dest: ChainId, id: MessageId, exec: Execution) {
        let fresh = self
            .executed
            .entry(dest)
            .or_default()
            .insert(id, exec)
            .is_none();
        self.unchecked.push((dest, id));
        if !fresh && self.pending.is_none() {
            self.pending = Some((
                "no_double_execution",
                format!(
                    "message {id} executed twice on chain {dest} (block {})",
                    exec.block
                ),
            ));
        }
    }

    /// The destination's blocks from `first_void` on were reverted (by its sequencer); returns
    /// the executions forgotten.
    pub fn dest_reverted(&mut self, dest: ChainId, first_void: BlockNumber) -> Vec<MessageId> {
        if self.voided.get(&dest).is_some_and(|b| first_void <= *b) {
            self.voided.remove(&dest);
        }
        let Some(ids) = self.executed.get_mut(&dest) else {
            return vec![];
        };
        let undone: Vec<MessageId> = ids
            .iter()
            .filter(|(_, e)| e.block >= first_void)
            .map(|(id, _)| *id)
            .collect();
        ids.retain(|_, e| e.block < first_void);
        undone
    }

    /// The SL reverted `chain`'s blocks from `first_block` on; its sequencer rolls back when
    /// its operator hears of it.
    pub fn sl_voided(&mut self, chain: ChainId, first_block: BlockNumber) {
        let b = self.voided.entry(chain).or_insert(first_block);
        *b = (*b).min(first_block);
    }

    /// The SL executed a batch.
    pub fn batch_executed(&mut self, chain: ChainId, batch: BatchNumber) {
        self.executed_batches.insert((chain, batch));
    }

    /// The SL reverted batches `from..=to`; none of them may be executed.
    pub fn batches_reverted(&mut self, chain: ChainId, from: BatchNumber, to: BatchNumber) {
        if let Some((_, b)) = self
            .executed_batches
            .range((chain, from)..=(chain, to))
            .next()
        {
            if self.pending.is_none() {
                self.pending = Some((
                    "executed_batch_never_reverted",
                    format!("chain {chain}: executed batch {b} reverted ({from}..={to})"),
                ));
            }
        }
    }

    /// Every check, after an event. `chains` lists every chain in id order; `lookup` finds one;
    /// `heads_moved` is false when the event cannot have moved any sequencer's head (then the
    /// chains' fingerprints are not even compared).
    ///
    /// The work is incremental but the result is that of a full check: a chain's value is
    /// recounted whenever its head moved; the SL's totals and settled heights are re-read
    /// whenever the SL produced a block; each execution is checked when recorded, again when its
    /// destination's settled block passes it, and everything again after a source's message
    /// tree shrank (only a revert does that; appends never invalidate an existing leaf).
    pub fn check<'s>(
        &mut self,
        sl: &SettlementLayer,
        heads_moved: bool,
        chains: impl Iterator<Item = (ChainId, &'s Sequencer)>,
        lookup: impl Fn(ChainId) -> Option<&'s Sequencer>,
    ) -> Option<Failure> {
        if let Some(f) = self.pending.take() {
            return Some(f);
        }
        let mut full = false;
        let mut position = 0;
        let chains = chains.take(if heads_moved { usize::MAX } else { 0 });
        for (id, seq) in chains {
            let now = ChainFingerprint::of(seq);
            let before = match self.seen_chains.get_mut(position) {
                Some((seen_id, fp)) if *seen_id == id => Some(std::mem::replace(fp, now)),
                _ => {
                    // the chain set changed: start this position over
                    self.seen_chains.truncate(position);
                    self.seen_chains.push((id, now));
                    None
                }
            };
            position += 1;
            if before == Some(now) {
                continue;
            }
            if !seq.state().value_conserved() {
                return Some((
                    "chain_value_conserved",
                    format!("chain {id}: totals {:?}", seq.state().totals()),
                ));
            }
            if before.is_some_and(|b| now.outbox_len < b.outbox_len) {
                full = true;
            }
        }
        if heads_moved {
            self.seen_chains.truncate(position);
        }
        let sl_moved = self.seen_sl_height != Some(sl.height());
        self.seen_sl_height = Some(sl.height());
        if sl_moved {
            let total = sl.total_value();
            if total != self.sl_value {
                return Some((
                    "sl_value_conserved",
                    format!("SL total value {total}, expected {}", self.sl_value),
                ));
            }
        }
        let settled_block = |chain: ChainId| {
            sl.chain(chain)
                .and_then(|c| c.batches.get(&c.last_executed))
                .map(|b| b.header.lastBlock)
        };
        let mut todo: Vec<(ChainId, MessageId)> = Vec::new();
        if full {
            for (dest, ids) in &self.executed {
                todo.extend(ids.keys().map(|id| (*dest, *id)));
            }
        } else {
            todo.append(&mut self.unchecked);
            if sl_moved {
                for (dest, ids) in &self.executed {
                    let now = settled_block(*dest).unwrap_or(0);
                    let before = self.settled_block.get(dest).copied().unwrap_or(0);
                    if now > before {
                        todo.extend(
                            ids.iter()
                                .filter(|(_, e)| e.block > before && e.block <= now)
                                .map(|(id, _)| (*dest, *id)),
                        );
                    }
                }
            }
        }
        self.unchecked.clear();
        if sl_moved {
            todo.extend(self.phantoms.iter().copied());
        }
        if sl_moved || full {
            for dest in self.executed.keys() {
                self.settled_block
                    .insert(*dest, settled_block(*dest).unwrap_or(0));
            }
        }
        for (dest, id) in todo {
            match self.check_one(sl, &lookup, dest, id) {
                Check::Holds => {
                    self.phantoms.remove(&(dest, id));
                }
                Check::Phantom => {
                    self.phantoms.insert((dest, id));
                }
                Check::Fails(f) => return Some(f),
            }
        }
        None
    }

    /// Executions of an equivocating sequencer's discarded messages that their destination
    /// still holds (checked at the end of a run: the SL's contradiction revert must have
    /// undone them).
    pub fn phantoms_kept<'s>(
        &self,
        lookup: impl Fn(ChainId) -> Option<&'s Sequencer>,
    ) -> Vec<Failure> {
        self.phantoms
            .iter()
            .filter_map(|(dest, id)| {
                let exec = self.executed.get(dest)?.get(id)?;
                let src = lookup(id.source_chain)?;
                let leaf = src.state().outbox().leaf(id.nonce);
                (leaf != exec.leaf).then(|| {
                    (
                        "executed_message_exists",
                        format!(
                            "message {id} executed on chain {dest} block {} is in no block of \
                             its source's batches (an equivocated block), and was never undone",
                            exec.block
                        ),
                    )
                })
            })
            .collect()
    }

    /// The per-execution invariants: the message exists in its source's tree, and if its
    /// destination block is settled, so is its source batch.
    fn check_one<'s>(
        &self,
        sl: &SettlementLayer,
        lookup: &impl Fn(ChainId) -> Option<&'s Sequencer>,
        dest: ChainId,
        id: MessageId,
    ) -> Check {
        let Some(exec) = self.executed.get(&dest).and_then(|e| e.get(&id)) else {
            return Check::Holds; // rolled back
        };
        let void_from = self.voided.get(&dest).copied().unwrap_or(BlockNumber::MAX);
        if exec.block >= void_from {
            return Check::Holds; // void on the SL; the destination's rollback is on its way
        }
        let dest_settled_block = sl
            .chain(dest)
            .and_then(|c| c.batches.get(&c.last_executed))
            .map(|b| b.header.lastBlock);
        let Some(src) = lookup(id.source_chain) else {
            return Check::Fails((
                "executed_message_exists",
                format!("message {id} executed on {dest} from an unknown source"),
            ));
        };
        let leaf = src.state().outbox().leaf(id.nonce);
        let ok = match (leaf, exec.leaf) {
            (None, _) => false,
            (Some(have), Some(want)) => have == want,
            (Some(_), None) => true,
        };
        let settled = dest_settled_block.is_some_and(|b| exec.block <= b);
        if !ok && !settled && exec.leaf.is_some_and(|l| self.phantom_leaves.contains(&l)) {
            return Check::Phantom;
        }
        if !ok {
            return Check::Fails((
                "executed_message_exists",
                format!(
                    "message {id} executed on chain {dest} block {} is not in its source's \
                     message tree (leaf there: {leaf:?}, executed: {:?})",
                    exec.block, exec.leaf
                ),
            ));
        }
        let settled_count = sl
            .chain(id.source_chain)
            .and_then(|c| c.batches.get(&c.last_executed))
            .map_or(0, |b| b.header.messageCount);
        if settled && id.nonce >= settled_count {
            return Check::Fails((
                "settled_execution_has_settled_source",
                format!(
                    "message {id} executed in settled block {} of chain {dest}, but its source \
                     batch is not executed on the SL",
                    exec.block
                ),
            ));
        }
        Check::Holds
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    //! Each checker of this module fires on a doctored input with its name and what it saw.
    //! (`settled_execution_has_settled_source` needs an SL with executed batches: its test
    //! doctors a real run, in `engine/invariants_fire.rs`.)
    use super::*;
    use alloy_primitives::Address;
    use braid_execution::{ChainState, StateKey, StateValue, ValueTotals};
    use braid_proof::ReExecution;
    use braid_sequencer::SequencerConfig;
    use braid_settlement::SlConfig;

    fn sl() -> SettlementLayer {
        SettlementLayer::new(SlConfig::new(Address::ZERO), Box::new(ReExecution::new())).unwrap()
    }

    /// Chain `id` at genesis with `state` instead of its genesis state.
    fn chain_with(id: ChainId, mut state: ChainState) -> Sequencer {
        let (genesis, _) = Sequencer::genesis(SequencerConfig::new(id), &[]).unwrap();
        let mut head = genesis.head().clone();
        head.stateRoot = state.state_root();
        Sequencer::restore(SequencerConfig::new(id), state, head, vec![], 0).unwrap()
    }

    /// Chain `id` whose message tree holds `leaves`.
    fn chain_sending(id: ChainId, leaves: &[B256]) -> Sequencer {
        chain_with(
            id,
            ChainState::restore(id, [], leaves.iter().copied()).unwrap(),
        )
    }

    /// One check over `chains` (every chain's head counts as moved).
    fn check(inv: &mut Invariants, sl: &SettlementLayer, chains: &[Sequencer]) -> Option<Failure> {
        let by_id = |id: ChainId| chains.iter().find(|s| s.config().chain_id == id);
        inv.check(
            sl,
            true,
            chains.iter().map(|s| (s.config().chain_id, s)),
            by_id,
        )
    }

    fn id(source_chain: ChainId, nonce: u64) -> MessageId {
        MessageId {
            source_chain,
            nonce,
        }
    }

    #[test]
    fn a_clean_state_passes_every_check() {
        let sl = sl();
        let leaf = B256::repeat_byte(7);
        let chains = [chain_sending(1, &[leaf]), chain_sending(2, &[])];
        let mut inv = Invariants::default();
        inv.executed(
            2,
            id(1, 0),
            Execution {
                block: 3,
                leaf: Some(leaf),
            },
        );
        assert_eq!(check(&mut inv, &sl, &chains), None);
    }

    #[test]
    fn no_double_execution_fires_on_a_second_execution_of_one_id() {
        let mut inv = Invariants::default();
        let exec = Execution {
            block: 3,
            leaf: None,
        };
        inv.executed(2, id(1, 0), exec);
        assert!(inv.pending.is_none());
        inv.executed(2, id(1, 0), Execution { block: 4, ..exec });
        let (name, detail) = inv.pending.take().unwrap();
        assert_eq!(name, "no_double_execution");
        assert_eq!(detail, "message 1:0 executed twice on chain 2 (block 4)");
        // a revert of the destination forgets the execution: executing again is fine
        assert_eq!(inv.dest_reverted(2, 3), vec![id(1, 0)]);
        inv.executed(2, id(1, 0), exec);
        assert!(inv.pending.is_none());
        // and the pending failure is what the next check reports
        inv.executed(2, id(1, 0), exec);
        let sl = sl();
        let failure = check(&mut inv, &sl, &[]).unwrap();
        assert_eq!(failure.0, "no_double_execution");
    }

    #[test]
    fn executed_batch_never_reverted_fires_on_a_revert_of_an_executed_batch() {
        let mut inv = Invariants::default();
        inv.batch_executed(1, 4);
        inv.batches_reverted(1, 5, 6);
        inv.batches_reverted(2, 1, 9);
        assert!(
            inv.pending.is_none(),
            "batches after it, or another chain's"
        );
        inv.batches_reverted(1, 3, 6);
        let (name, detail) = inv.pending.take().unwrap();
        assert_eq!(name, "executed_batch_never_reverted");
        assert_eq!(detail, "chain 1: executed batch 4 reverted (3..=6)");
    }

    #[test]
    fn executed_message_exists_fires_for_an_unknown_source() {
        let sl = sl();
        let chains = [chain_sending(2, &[])];
        let mut inv = Invariants::default();
        let exec = Execution {
            block: 3,
            leaf: None,
        };
        inv.executed(2, id(9, 0), exec);
        let (name, detail) = check(&mut inv, &sl, &chains).unwrap();
        assert_eq!(name, "executed_message_exists");
        assert_eq!(detail, "message 9:0 executed on 2 from an unknown source");
    }

    #[test]
    fn executed_message_exists_fires_for_a_nonce_beyond_the_source_tree() {
        let sl = sl();
        let chains = [
            chain_sending(1, &[B256::repeat_byte(7)]),
            chain_sending(2, &[]),
        ];
        let mut inv = Invariants::default();
        let exec = Execution {
            block: 3,
            leaf: None,
        };
        inv.executed(2, id(1, 1), exec);
        let (name, detail) = check(&mut inv, &sl, &chains).unwrap();
        assert_eq!(name, "executed_message_exists");
        assert!(
            detail.starts_with("message 1:1 executed on chain 2 block 3 is not in its source's"),
            "{detail}"
        );
        assert!(detail.contains("leaf there: None"), "{detail}");
    }

    #[test]
    fn executed_message_exists_fires_for_a_leaf_that_differs_from_the_source_tree() {
        let sl = sl();
        let chains = [
            chain_sending(1, &[B256::repeat_byte(7)]),
            chain_sending(2, &[]),
        ];
        let mut inv = Invariants::default();
        let forged = Execution {
            block: 5,
            leaf: Some(B256::repeat_byte(8)),
        };
        inv.executed(2, id(1, 0), forged);
        let (name, detail) = check(&mut inv, &sl, &chains).unwrap();
        assert_eq!(name, "executed_message_exists");
        assert!(
            detail.starts_with("message 1:0 executed on chain 2 block 5"),
            "{detail}"
        );
        assert!(
            detail.contains(&B256::repeat_byte(8).to_string()),
            "{detail}"
        );
        // an execution in a block the SL voided waits for the rollback instead
        let mut inv = Invariants::default();
        inv.sl_voided(2, 5);
        inv.executed(2, id(1, 0), forged);
        assert_eq!(check(&mut inv, &sl, &chains), None);
    }

    #[test]
    fn an_equivocated_message_is_tolerated_until_undone_and_fails_if_kept() {
        let sl = sl();
        let chains = [
            chain_sending(1, &[B256::repeat_byte(7)]),
            chain_sending(2, &[]),
        ];
        let phantom = B256::repeat_byte(9);
        let mut inv = Invariants::default();
        inv.phantom_leaves.insert(phantom);
        inv.executed(
            2,
            id(1, 0),
            Execution {
                block: 4,
                leaf: Some(phantom),
            },
        );
        // not settled: tracked, not a failure
        assert_eq!(check(&mut inv, &sl, &chains), None);
        // still held at the end: kept
        let lookup = |c: ChainId| chains.iter().find(|s| s.config().chain_id == c);
        let kept = inv.phantoms_kept(lookup);
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].0, "executed_message_exists");
        assert!(
            kept[0]
                .1
                .starts_with("message 1:0 executed on chain 2 block 4 is in no block"),
            "{}",
            kept[0].1
        );
        // undone by the destination's roll-back: nothing is kept
        inv.dest_reverted(2, 4);
        assert!(inv.phantoms_kept(lookup).is_empty());
    }

    #[test]
    fn chain_value_conserved_fires_for_a_chain_whose_balances_do_not_add_up() {
        let sl = sl();
        // 5 wei created at genesis, but no account holds them
        let totals = ValueTotals {
            genesis_supply: U256::from(5u64),
            ..ValueTotals::default()
        };
        let state =
            ChainState::restore(3, [(StateKey::Totals, StateValue::Totals(totals))], []).unwrap();
        assert!(!state.value_conserved());
        let chains = [chain_sending(1, &[]), chain_with(3, state)];
        let mut inv = Invariants::default();
        let (name, detail) = check(&mut inv, &sl, &chains).unwrap();
        assert_eq!(name, "chain_value_conserved");
        assert!(detail.starts_with("chain 3: totals"), "{detail}");
        assert!(detail.contains("genesis_supply: 5"), "{detail}");
    }

    #[test]
    fn sl_value_conserved_fires_when_the_sl_total_moves() {
        let sl = sl();
        let mut inv = Invariants::default();
        assert_eq!(check(&mut inv, &sl, &[]), None);
        // the SL's total is re-read only when it produced a block: start over
        let mut inv = Invariants {
            sl_value: sl.total_value() + U256::from(1u64),
            ..Invariants::default()
        };
        let (name, detail) = check(&mut inv, &sl, &[]).unwrap();
        assert_eq!(name, "sl_value_conserved");
        assert_eq!(
            detail,
            format!(
                "SL total value {}, expected {}",
                sl.total_value(),
                sl.total_value() + U256::from(1u64)
            )
        );
    }
}
