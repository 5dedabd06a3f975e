//! Which role needs which settlement-layer event: one rule for every shell.

use braid_primitives::ChainId;
use braid_settlement::SlEvent;

/// Whether the operator (and sequencer) of `chain` needs an SL event: its own chain's, every
/// revert (its imports may be void) and SL blocks (they close the operator's revert handling
/// and advance its view's height).
pub fn operator_concerns(chain: ChainId, e: &SlEvent) -> bool {
    match e {
        SlEvent::SlBlock { .. } | SlEvent::BatchesReverted { .. } => true,
        SlEvent::ChainRegistered { chain: c }
        | SlEvent::BatchCommitted { chain: c, .. }
        | SlEvent::BatchProven { chain: c, .. }
        | SlEvent::ExecutionRequested { chain: c, .. }
        | SlEvent::BatchExecuted { chain: c, .. }
        | SlEvent::BatchCheckFailed { chain: c, .. } => *c == chain,
        SlEvent::DepositQueued(d) => d.chainId == chain,
        // the rest is for no batch-settling role (`SlEvent::for_batch_roles`)
        _ => false,
    }
}

/// Whether the relayer follows an SL event (`SlEvent::for_batch_roles`): rejections go to no
/// one but the report, finality and optimistic-game events only concern their own roles.
pub fn relayer_concerns(e: &SlEvent) -> bool {
    e.for_batch_roles()
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid_settlement::{Authority, RevertCause};

    #[test]
    fn an_operator_gets_its_own_events_every_revert_and_sl_blocks() {
        let committed = |chain| SlEvent::BatchCommitted {
            chain,
            batch: 1,
            by: Authority::Operator,
        };
        assert!(operator_concerns(901, &committed(901)));
        assert!(!operator_concerns(902, &committed(901)));
        let reverted = SlEvent::BatchesReverted {
            chain: 901,
            from: 2,
            to: 3,
            first_block: 9,
            cause: RevertCause::Requested(Authority::Operator),
        };
        assert!(operator_concerns(902, &reverted));
        assert!(operator_concerns(901, &reverted));
        assert!(relayer_concerns(&reverted));
    }
}
