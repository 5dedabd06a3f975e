//! A chain node's wiring rules on a real sequencer and operator.
#![allow(clippy::unwrap_used, clippy::panic)]

use alloy_primitives::B256;
use braid_driver::{ChainEffect, ChainRole, ImportRefusal, NoTree};
use braid_operator::{Operator, OperatorConfig};
use braid_primitives::{ImportKind, ImportedRoot};
use braid_sequencer::{Sequencer, SequencerConfig, SequencerOutput};
use braid_settlement::{AggregationConfig, Authority, RevertCause, SlEvent};

const ME: u64 = 902;
const SOURCE: u64 = 901;

fn role() -> ChainRole {
    let (seq, _) = Sequencer::genesis(SequencerConfig::new(ME), &[]).unwrap();
    ChainRole::new(
        seq,
        Operator::new(OperatorConfig::new(ME)),
        AggregationConfig::default(),
    )
    .unwrap()
}

fn precommit(height: u64) -> ImportedRoot {
    ImportedRoot {
        kind: ImportKind::Precommit as u8,
        sourceChain: SOURCE,
        sourceHeight: height,
        root: B256::repeat_byte(height as u8),
        messageCount: height,
    }
}

fn source_revert(first_block: u64) -> SlEvent {
    SlEvent::BatchesReverted {
        chain: SOURCE,
        from: 3,
        to: 4,
        first_block,
        cause: RevertCause::Requested(Authority::Operator),
    }
}

fn queued(effects: &[ChainEffect]) -> bool {
    matches!(
        effects,
        [ChainEffect::Output(SequencerOutput::ImportQueued(_))]
    )
}

#[test]
fn an_import_built_before_a_revert_that_voided_it_is_refused() {
    let mut role = role();
    role.observe_sl(&source_revert(5), &NoTree).unwrap();
    // built at epoch 0 (before the revert), of a block the revert voided: refused, typed
    let effects = role.import(precommit(7), Some(0), &NoTree);
    let [ChainEffect::ImportRefused { import, reason }] = &effects[..] else {
        panic!("{effects:?}");
    };
    assert_eq!(import, &precommit(7));
    assert_eq!(
        reason,
        &ImportRefusal::VoidedBySourceRevert {
            source_chain: SOURCE,
            height: 7,
            sent_at_epoch: 0,
            revert: 1,
            from_batch: 3,
            first_block: 5,
        }
    );
    assert!(role.seq().pending_imports().is_empty(), "nothing changed");
    // a block before the revert's first block is still valid
    assert!(queued(&role.import(precommit(4), Some(0), &NoTree)));
    // built after the revert (epoch 1): a block of the re-sequenced chain
    assert!(queued(&role.import(precommit(6), Some(1), &NoTree)));
    // a sender that does not say (an RPC caller) is taken as current
    assert!(queued(&role.import(precommit(8), None, &NoTree)));
}

#[test]
fn a_void_import_waiting_in_the_queue_is_dropped_when_its_source_reverts() {
    let mut role = role();
    assert!(queued(&role.import(precommit(7), Some(0), &NoTree)));
    assert!(queued(&role.import(precommit(2), Some(0), &NoTree)));
    let effects = role.observe_sl(&source_revert(5), &NoTree).unwrap();
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, ChainEffect::RolledBack { outcome, .. } if outcome.imports_dropped == vec![precommit(7)])),
        "{effects:?}"
    );
    assert_eq!(role.seq().pending_imports(), &[precommit(2)]);
}

/// An SL node that has given up on every `aggregated` checkpoint (the aggregator timed out).
struct AggregatorTimedOut;

impl braid_driver::SlNode for AggregatorTimedOut {
    fn aggregation_exit_open(&self, _: u64, _: u64) -> bool {
        true
    }
    fn aggregated_import_unsettleable(&self, _: u64, import: &ImportedRoot) -> bool {
        import.kind == ImportKind::Aggregated as u8
    }
}

/// Issue 15, generated seed 934: after a council revert, the relayer imported again the
/// `aggregated` checkpoints the SL had given up on, so the re-sequenced batch could never
/// execute and the council reverted it again. The chain node now asks its SL node before an
/// import reaches the sequencer.
#[test]
fn an_aggregated_import_the_sl_gave_up_on_is_refused_before_the_sequencer() {
    let mut role = role();
    let aggregated = ImportedRoot {
        kind: ImportKind::Aggregated as u8,
        sourceChain: 0,
        sourceHeight: 4,
        root: B256::repeat_byte(4),
        messageCount: 1,
    };
    let effects = role.import(aggregated.clone(), None, &AggregatorTimedOut);
    let [ChainEffect::ImportRefused { import, reason }] = &effects[..] else {
        panic!("{effects:?}");
    };
    assert_eq!(import, &aggregated);
    assert_eq!(
        reason,
        &ImportRefusal::UnsettleableAggregated { checkpoint: 4 }
    );
    assert!(role.seq().pending_imports().is_empty(), "nothing queued");
    // other kinds are the SL's business at execution only
    assert!(queued(&role.import(
        precommit(3),
        None,
        &AggregatorTimedOut
    )));
}
