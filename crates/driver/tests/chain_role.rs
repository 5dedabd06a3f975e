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
    let effects = role.import(precommit(7), Some(0));
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
    assert!(queued(&role.import(precommit(4), Some(0))));
    // built after the revert (epoch 1): a block of the re-sequenced chain
    assert!(queued(&role.import(precommit(6), Some(1))));
    // a sender that does not say (an RPC caller) is taken as current
    assert!(queued(&role.import(precommit(8), None)));
}

#[test]
fn a_void_import_waiting_in_the_queue_is_dropped_when_its_source_reverts() {
    let mut role = role();
    assert!(queued(&role.import(precommit(7), Some(0))));
    assert!(queued(&role.import(precommit(2), Some(0))));
    let effects = role.observe_sl(&source_revert(5), &NoTree).unwrap();
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, ChainEffect::RolledBack { outcome, .. } if outcome.imports_dropped == vec![precommit(7)])),
        "{effects:?}"
    );
    assert_eq!(role.seq().pending_imports(), &[precommit(2)]);
}
