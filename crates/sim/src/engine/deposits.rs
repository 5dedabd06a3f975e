//! SL deposits in the simulator: a depositor queues forced deposits to chains, their sequencers
//! must include them (a `censor_deposits` fault holds them back), and the report follows each
//! deposit from queueing to inclusion and settlement. A batch that skips an overdue deposit
//! cannot settle; the security council reverts it and the re-sequenced blocks carry it.

use alloy_primitives::{Address, U256};
use braid_primitives::Block;
use braid_settlement::{SlCall, SlEvent};

use super::{Event, Sim};

impl Sim<'_> {
    /// Deposit stream `i` queues one deposit and schedules the next.
    pub(super) fn deposit_tick(&mut self, i: usize) -> Result<(), String> {
        let Some(d) = self.scenario.deposits.get(i).cloned() else {
            return Ok(());
        };
        if self.now < self.scenario.traffic_stop_ms() {
            let call = SlCall::Deposit {
                chain_id: d.to,
                recipient: Address::repeat_byte(0xd0),
                amount: U256::from(d.amount_wei),
            };
            let key = self.depositor.clone();
            self.submit_signed(&key, call)?;
            let next = self.now + self.exp_ms(d.rate_per_s);
            self.schedule(next, Event::Deposit(i));
        }
        Ok(())
    }

    /// Deposit bookkeeping on SL events; the council reverts batches that cannot settle
    /// because they skipped an overdue deposit or a final optimistic proposal contradicts them.
    pub(super) fn deposit_sl_event(&mut self, e: &SlEvent) {
        match e {
            SlEvent::DepositQueued(d) => {
                self.deposit_stats.queued += 1;
                self.deposit_times
                    .insert((d.chainId, d.index), (self.now, None));
            }
            SlEvent::BatchCheckFailed {
                chain,
                batch,
                reason,
            } => {
                let censored = reason.contains("censored deposit");
                if censored {
                    self.deposit_stats.batches_failed_censorship += 1;
                }
                if censored
                    || reason.starts_with("final optimistic proposal")
                    || reason.starts_with("forged aggregated import")
                    || reason.starts_with("aggregated import of checkpoint")
                {
                    self.council_reverts.insert((*chain, *batch));
                }
            }
            SlEvent::BatchExecuted { chain, batch, .. } => {
                let Some(after) = self.sl.batch(*chain, *batch).map(|b| b.deposit_count_after)
                else {
                    return;
                };
                let now = self.now;
                let settled: Vec<(u64, u64, Option<u64>)> = self
                    .deposit_times
                    .range((*chain, 0)..(*chain, after))
                    .map(|((_, i), (queued, included))| (*i, *queued, *included))
                    .collect();
                for (i, queued, included) in settled {
                    self.deposit_times.remove(&(*chain, i));
                    self.deposit_stats.settled += 1;
                    self.deposit_settlement.push(now.saturating_sub(queued));
                    self.deposit_inclusion.extend(included);
                }
            }
            _ => {}
        }
    }

    /// A sealed block applied deposits: the last inclusion of each counts (after reverts, the
    /// re-sequenced block's).
    pub(super) fn deposits_included(&mut self, block: &Block) {
        let ts = block.header.timestampMs;
        for d in &block.deposits {
            if let Some((queued, included)) = self.deposit_times.get_mut(&(d.chainId, d.index)) {
                *included = Some(ts.saturating_sub(*queued));
            }
        }
    }
}
