//! Liveness as an invariant, checked at the end of a run.
//!
//! The run lasts at least `drain_ms` past the quiet point (the last fault's end, the end of
//! traffic: [`Scenario::quiet_at_ms`](crate::Scenario::quiet_at_ms)). At its end:
//! - **`message_delivered`**: every message whose source batch the SL executed at least
//!   `drain_ms / 2` before the end is executed on its destination. The simulator's senders
//!   name valid recipients and no deadline, so no message is undeliverable through its
//!   sender's fault: any such message is stuck by the system.
//! - **`chain_settles`**: every chain executed a batch on the SL within the last `drain_ms / 2`
//!   (every chain's operator is live after the quiet point, and the council always is; a
//!   sequencer produces blocks, empty or not, every block time, so there is always a batch
//!   to settle).
//!
//! - **`executed_message_exists`** (its end-of-run part): an execution of a message only an
//!   equivocating sequencer's discarded block held is tolerated while its destination block is
//!   not settled (the SL must find the import contradicted and revert the importer); one still
//!   held at the end was kept.
//!
//! A safety violation stops the run early; liveness is then not judged.

use std::collections::BTreeMap;

use braid_primitives::ChainId;
use braid_relayer::MessageStatus;

use super::Sim;
use crate::report::{StalledChain, StuckMessage, Violation};

/// How many stuck messages the report lists one by one.
const STUCK_LISTED: usize = 50;

impl Sim<'_> {
    /// Judges liveness at the end of the run (see the module docs).
    pub(super) fn check_liveness(&mut self) {
        if self.violation.is_some() {
            return;
        }
        let end = self.now;
        let drain = self.scenario.drain_ms();
        let horizon = end.saturating_sub(drain / 2);
        let mut report = crate::report::LivenessReport {
            quiet_at_ms: self.scenario.quiet_at_ms(),
            drain_ms: drain,
            checked_at_ms: end,
            ..Default::default()
        };
        for (id, t) in &self.messages {
            let Some(settled) = t.settled_at else {
                continue;
            };
            if t.executed_at.is_some() || settled > horizon {
                continue;
            }
            report.stuck_count += 1;
            if report.stuck_messages.len() < STUCK_LISTED {
                let waiting = match self.relayer.core().message(id).map(|r| &r.status) {
                    None => "the relayer does not know the message".to_string(),
                    Some(MessageStatus::Sent { at_block }) => {
                        format!(
                            "its root is not imported on the destination (source block {at_block})"
                        )
                    }
                    Some(MessageStatus::Imported) => {
                        "its root is imported but no execution is in flight".to_string()
                    }
                    Some(MessageStatus::Submitted) => {
                        "an execution is in flight but never included".to_string()
                    }
                    Some(MessageStatus::Executed { dest_block }) => format!(
                        "the relayer saw it executed in block {dest_block}, which was reverted"
                    ),
                };
                report.stuck_messages.push(StuckMessage {
                    id: id.to_string(),
                    mode: braid_primitives::ImportKind::from(t.mode)
                        .name()
                        .to_string(),
                    dest: t.dest,
                    sent_at_ms: t.sent_at,
                    settled_at_ms: settled,
                    waiting,
                });
            }
        }
        for id in self.chains.keys() {
            let last = self
                .executions
                .iter()
                .rev()
                .find(|e| e.chain == *id)
                .map(|e| e.at_ms);
            if last.is_none_or(|at| at < horizon) {
                let executed = self.executions.iter().filter(|e| e.chain == *id).count();
                report.stalled_chains.push(StalledChain {
                    chain: *id,
                    last_batch_executed_at_ms: last,
                    batches_executed: executed as u64,
                    head: self
                        .chains
                        .get(id)
                        .map_or(0, |n| n.role.seq().head().number),
                    waiting: self.first_unexecuted_batch(*id),
                });
            }
        }
        let violation = |invariant: &str, detail: String| Violation {
            invariant: invariant.to_string(),
            detail,
            at_ms: end,
            event: self.events,
            seed: self.seed,
            replay: self.scenario.replay_command(self.seed),
        };
        if let Some(first) = report.stuck_messages.first() {
            self.liveness_violations.push(violation(
                "message_delivered",
                format!(
                    "{} message(s) whose source batch settled on the SL were never executed on \
                     their destination, e.g. {} ({} to chain {}, settled at {} ms): {}",
                    report.stuck_count,
                    first.id,
                    first.mode,
                    first.dest,
                    first.settled_at_ms,
                    first.waiting
                ),
            ));
        }
        if let Some(first) = report.stalled_chains.first() {
            let since = first
                .last_batch_executed_at_ms
                .map_or("the start".to_string(), |t| format!("{t} ms"));
            self.liveness_violations.push(violation(
                "chain_settles",
                format!(
                    "{} chain(s) stopped settling: chain {} executed no batch on the SL since \
                     {since} (run end {end} ms, drain window {drain} ms, head block {}; {})",
                    report.stalled_chains.len(),
                    first.chain,
                    first.head,
                    first.waiting
                ),
            ));
        }
        let chains = &self.chains;
        let kept = self
            .invariants
            .phantoms_kept(|id| chains.get(&id).map(|n| n.role.seq()));
        for (invariant, detail) in kept.into_iter().take(1) {
            self.liveness_violations.push(violation(invariant, detail));
        }
        self.liveness = report;
    }

    /// What the first batch of `chain` the SL has not executed waits for.
    fn first_unexecuted_batch(&self, chain: ChainId) -> String {
        let Some(c) = self.sl.chain(chain) else {
            return "the chain is not registered on the SL".to_string();
        };
        let next = c.last_executed + 1;
        let Some(rec) = self.sl.batch(chain, next) else {
            return format!(
                "batch {next} is not committed (last committed {}, {} sealed)",
                c.last_committed,
                self.chains
                    .get(&chain)
                    .map_or(0, |n| n.role.seq().last_batch())
            );
        };
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for i in &rec.imports {
            let kind =
                braid_primitives::ImportKind::try_from(i.kind).map_or("unknown", |k| k.name());
            *kinds.entry(kind).or_default() += 1;
        }
        format!(
            "batch {next}: {:?}, execution {}requested{}, imports {kinds:?}",
            rec.status,
            if rec.execute_request.is_some() {
                ""
            } else {
                "not "
            },
            rec.failure
                .as_ref()
                .map_or(String::new(), |f| format!(", check failed: {f}")),
        )
    }
}
