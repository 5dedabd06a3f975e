//! End to end: two or three chains, the settlement layer, operators and a relayer, all real
//! cores, with invariants checked after every step (see `harness`).
#![allow(clippy::unwrap_used, clippy::panic)]

mod harness;

use alloy_primitives::{Bytes, U256};
use braid_execution::ExecutionError;
use braid_primitives::{ImportKind, B256};
use braid_proof::{BatchClaim, BatchOutputs, ProofError, ProofSystem, ReExecution};
use braid_settlement::{Authority, RevertCause, SettlementError, SlCall, SlEvent};
use harness::*;

const A: u64 = 901;
const B: u64 = 902;
const C: u64 = 903;

#[test]
fn messages_in_every_mode_execute_once_and_both_chains_settle() {
    let mut net = Net::new(&[A, B]);
    net.send(A, B, ETH, ImportKind::Precommit);
    net.send(A, B, 2 * ETH, ImportKind::Commit);
    net.send(A, B, 3 * ETH, ImportKind::Proof);
    net.run(30);
    assert_eq!(net.tracked.len(), 3);
    for t in &net.tracked {
        assert!(t.executed, "{:?} message not executed", t.mode);
    }
    let b = &net.nodes[&B];
    assert_eq!(b.seq().state().account(&bob()).balance, U256::from(6 * ETH));
    // both chains settled: every batch sealed more than a few steps ago is executed
    for id in [A, B] {
        let sealed = net.nodes[&id].batches.len() as u64;
        let executed = net.sl.chain(id).unwrap().last_executed;
        assert!(
            executed + 2 >= sealed && executed >= 10,
            "chain {id}: {executed} of {sealed}"
        );
    }
    // the 6 ETH left A's escrow and arrived in B's; nothing is left in flight
    assert_eq!(net.sl.in_flight(), U256::ZERO);
    let escrow_a = net.sl.chain(A).unwrap().escrow;
    let escrow_b = net.sl.chain(B).unwrap().escrow;
    assert!(escrow_a < U256::from(104 * ETH) && escrow_b > U256::from(115 * ETH));
    let sl_balances = net.sl.balance(&harness::address_of(&depositor()));
    assert_eq!(
        escrow_a + escrow_b,
        net.initial_sl_value - burned(&net) - sl_balances
    );
    assert_eq!(net.sl.fees_collected(), burned(&net));
    // the pre-commit message executed before its source batch was even committed
    let pre = net
        .tracked
        .iter()
        .find(|t| t.mode == ImportKind::Precommit)
        .unwrap();
    assert_eq!(pre.source_block, 1);
}

fn burned(net: &Net) -> U256 {
    net.sl.chain(A).unwrap().executed_totals.burned_fees
        + net.sl.chain(B).unwrap().executed_totals.burned_fees
}

#[test]
fn chains_importing_from_each_other_execute_together_without_deadlock() {
    let mut net = Net::new(&[A, B]);
    net.send(A, B, ETH, ImportKind::Precommit);
    net.send(B, A, ETH, ImportKind::Precommit);
    net.run(8);
    // A's batch 1 imports B's block-1 LocalRoot and B's batch 1 imports A's: a cycle
    let imports_of = |id: u64| -> Vec<u64> {
        net.nodes[&id].batches[&1]
            .blocks
            .iter()
            .flat_map(|b| b.imports.iter().map(|i| i.sourceChain))
            .collect()
    };
    assert_eq!(imports_of(A), vec![B]);
    assert_eq!(imports_of(B), vec![A]);
    assert!(net.executed(A, 1) && net.executed(B, 1));
    let executed_at: Vec<usize> = net
        .sl_events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, SlEvent::BatchExecuted { batch: 1, .. }))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(executed_at.len(), 2);
    let blocks_between = net.sl_events[executed_at[0]..executed_at[1]]
        .iter()
        .filter(|e| matches!(e, SlEvent::SlBlock { .. }))
        .count();
    assert_eq!(
        blocks_between, 0,
        "the two batches executed in one SL block, atomically"
    );
}

#[test]
fn a_reverted_source_batch_reverts_its_importers_in_cascade() {
    let mut net = Net::new(&[A, B, C]);
    net.nodes.get_mut(&A).unwrap().mode = OperatorMode::CommitOnly;
    net.send(A, B, ETH, ImportKind::Precommit);
    net.run(6);
    // B executed A's message early and committed, proved and asked to execute its batch 1
    assert!(net.tracked[0].executed);
    let b1 = net.sl.batch(B, 1).unwrap();
    assert!(b1.execute_request.is_some());
    // ... but it waits: its dependency (A's batch 1) is committed, not executed
    assert!(!net.executed(B, 1));
    assert!(net.executed(C, 1), "an independent chain is not held up");

    // A's operator reverts its batch 1: B's batch 1 (the importer) is reverted in cascade
    let key = net.nodes[&A].operator;
    let nonce = net.sl.nonce(&harness::address_of(&key));
    net.submit_sl(
        &key,
        nonce,
        SlCall::RevertBatches {
            chain_id: A,
            from: 1,
        },
    );
    net.nodes.get_mut(&A).unwrap().mode = OperatorMode::Stalled;
    net.nodes.get_mut(&B).unwrap().mode = OperatorMode::Stalled;
    net.step();
    let reverted: Vec<_> = net
        .events(|e| matches!(e, SlEvent::BatchesReverted { .. }))
        .collect();
    assert!(reverted.iter().any(|e| matches!(
        e,
        SlEvent::BatchesReverted {
            chain: A,
            from: 1,
            cause: RevertCause::Requested(Authority::Operator),
            ..
        }
    )));
    assert!(reverted.iter().any(|e| matches!(
        e,
        SlEvent::BatchesReverted {
            chain: B,
            from: 1,
            first_block: 1,
            cause: RevertCause::Cascade {
                source_chain: A,
                source_batch: 1
            },
            ..
        }
    )));
    assert!(!reverted
        .iter()
        .any(|e| matches!(e, SlEvent::BatchesReverted { chain: C, .. })));
    assert_eq!(net.sl.chain(B).unwrap().last_committed, 0);
    assert!(net.sl.batch(B, 1).is_none());
}

#[test]
fn a_bad_extension_proof_keeps_the_importer_from_executing() {
    let mut net = Net::new(&[A, B]);
    net.nodes.get_mut(&B).unwrap().tamper_extension = true;
    net.send(A, B, ETH, ImportKind::Precommit);
    net.step();
    // a second message in A's block 2 makes the extension proof non-trivial (size 1 -> 2)
    net.send(A, B, ETH, ImportKind::Commit);
    net.run(7);
    assert!(net.executed(A, 1));
    assert!(!net.executed(B, 1));
    assert!(net.events(|e| matches!(e,
        SlEvent::BatchCheckFailed { chain: B, batch: 1, reason } if reason.contains("does not extend"))).count() == 1);
}

/// A proof system with a minting bug: it verifies honestly, then reports that chain `A` sent
/// far more value than it did. Used to show the SL's escrow check stops the over-release.
struct MintingBug(ReExecution);

impl ProofSystem for MintingBug {
    fn name(&self) -> &'static str {
        "re-execution with a minting bug"
    }
    fn verify(&mut self, claim: &BatchClaim<'_>, proof: &[u8]) -> Result<BatchOutputs, ProofError> {
        let mut out = self.0.verify(claim, proof)?;
        if claim.header.chainId == A && claim.header.number == 2 {
            out.totals_after.sent_out += U256::from(1_000 * ETH);
        }
        Ok(out)
    }
    fn register_genesis(&mut self, genesis: braid_execution::ChainState) {
        self.0.register_genesis(genesis)
    }
    fn retain(&mut self, chain: u64, keep: &[B256]) {
        self.0.retain(chain, keep)
    }
}

#[test]
fn a_batch_releasing_more_than_its_chain_holds_cannot_execute() {
    let mut net = Net::with_proofs(&[A, B], Box::new(MintingBug(ReExecution::new())));
    net.run(8);
    assert!(net.executed(A, 1));
    assert!(!net.executed(A, 2));
    assert!(
        !net.executed(A, 3),
        "batches after the failed one wait behind it"
    );
    assert!(net.executed(B, 3));
    assert!(net.events(|e| matches!(e,
        SlEvent::BatchCheckFailed { chain: A, batch: 2, reason } if reason.contains("over-release"))).count() == 1);
    assert_eq!(net.sl.total_value(), net.initial_sl_value);
}

#[test]
fn a_batch_with_a_wrong_state_root_is_never_proven_and_is_reverted() {
    let mut net = Net::new(&[A, B]);
    net.nodes.get_mut(&A).unwrap().tamper = Some(|batch| {
        if batch.header.number == 2 {
            let last = batch.blocks.len() - 1;
            batch.blocks[last].header.stateRoot = B256::repeat_byte(0xee);
            batch.header.stateRoot = B256::repeat_byte(0xee);
            batch.header.lastBlockHash = batch.blocks[last].header.hash();
            batch.header.daCommitment = braid_primitives::da_commitment(&batch.blocks);
        }
    });
    net.run(8);
    assert!(net.executed(A, 1));
    assert!(
        net.sl.batch(A, 2).is_some(),
        "the forged batch is committed"
    );
    assert!(!net.executed(A, 2));
    let refused = net
        .events(|e| {
            matches!(e, SlEvent::TxRejected { call: "proveBatch", error: SettlementError::ProofRejected { batch: 2, error, .. }, .. }
                if matches!(&**error, ProofError::InvalidBlock { error: ExecutionError::HeaderMismatch { field: "stateRoot", .. }, .. }))
        })
        .count();
    assert!(refused >= 1);
    // the council reverts it
    let council = net.council;
    let nonce = net.sl.nonce(&harness::address_of(&council));
    net.submit_sl(
        &council,
        nonce,
        SlCall::RevertBatches {
            chain_id: A,
            from: 2,
        },
    );
    net.nodes.get_mut(&A).unwrap().mode = OperatorMode::Stalled;
    net.step();
    assert!(
        net.events(|e| matches!(
            e,
            SlEvent::BatchesReverted {
                chain: A,
                from: 2,
                cause: RevertCause::Requested(Authority::Council),
                ..
            }
        ))
        .count()
            == 1
    );
    assert_eq!(net.sl.chain(A).unwrap().last_committed, 1);
}

#[test]
fn forged_and_replayed_messages_are_refused_on_the_destination() {
    let mut net = Net::new(&[A, B]);
    net.send(A, B, ETH, ImportKind::Precommit);
    net.run(4);
    let t = net.tracked[0].clone();
    assert!(t.executed);
    let node = &net.nodes[&A];
    let p = node.seq().state().outbox().inclusion_proof(0, 1).unwrap();
    let proof = braid_execution::single_level_proof(
        ImportKind::Precommit,
        node.seq().state().outbox().root_at(1).unwrap(),
        p,
    );
    // replay
    let bob_before = net.nodes[&B].seq().state().account(&bob()).balance;
    net.auto_relay = false;
    let raw = net.execute_tx(B, &t.message, proof.clone());
    net.submit_relayer_tx(B, raw);
    net.step();
    assert!(net
        .dropped
        .iter()
        .any(|(c, e)| *c == B && matches!(e, ExecutionError::AlreadyExecuted { .. })));
    // forgery: a message A never sent (next nonce, ten times the value) with a doctored proof
    let mut forged = t.message.clone();
    forged.nonce = 1;
    forged.value = U256::from(10 * ETH);
    forged.payload = Bytes::from_static(b"forged");
    let mut forged_proof = proof;
    forged_proof.leafIndex = 1;
    let raw = net.execute_tx(B, &forged, forged_proof);
    net.submit_relayer_tx(B, raw);
    net.step();
    assert!(
        net.dropped
            .iter()
            .any(|(c, e)| *c == B && matches!(e, ExecutionError::BadProof(_))),
        "{:?}",
        net.dropped
    );
    assert_eq!(
        net.nodes[&B].seq().state().account(&bob()).balance,
        bob_before
    );
}

#[test]
fn a_stalled_chain_is_settled_by_the_council_then_by_anyone() {
    let mut net = Net::new(&[A, B]);
    net.nodes.get_mut(&A).unwrap().mode = OperatorMode::Stalled;
    net.run(4);
    let batch1 = net.nodes[&A].batches[&1].clone();
    let commit = |b: &braid_sequencer::SealedBatch| SlCall::CommitBatch {
        header: b.header.clone(),
        imports: vec![],
        blocks: b.blocks.clone(),
    };
    let council = net.council;
    let council_addr = harness::address_of(&council);
    // too early for the council
    net.submit_sl(&council, net.sl.nonce(&council_addr), commit(&batch1));
    net.step();
    assert!(
        net.events(|e| matches!(
            e,
            SlEvent::TxRejected {
                call: "commitBatch",
                error: SettlementError::NotAuthorized { .. },
                ..
            }
        ))
        .count()
            == 1
    );
    net.run(16); // now > 20 s without progress
    net.submit_sl(&council, net.sl.nonce(&council_addr), commit(&batch1));
    net.submit_sl(
        &council,
        net.sl.nonce(&council_addr) + 1,
        SlCall::ProveBatch {
            chain_id: A,
            batch: 1,
            proof: Bytes::new(),
        },
    );
    net.submit_sl(
        &council,
        net.sl.nonce(&council_addr) + 2,
        SlCall::ExecuteBatch {
            chain_id: A,
            batch: 1,
            extension_proofs: vec![],
        },
    );
    net.step();
    assert!(
        net.events(|e| matches!(
            e,
            SlEvent::BatchCommitted {
                chain: A,
                batch: 1,
                by: Authority::Council
            }
        ))
        .count()
            == 1
    );
    assert!(net.executed(A, 1));
    // a stranger must wait for the council timeout (40 s since the operator last acted)
    let stranger = harness::secret("stranger");
    let batch2 = net.nodes[&A].batches[&2].clone();
    net.submit_sl(&stranger, 0, commit(&batch2));
    net.step();
    assert!(net.sl.batch(A, 2).is_none());
    net.run(40);
    let stranger_nonce = net.sl.nonce(&harness::address_of(&stranger));
    assert_eq!(stranger_nonce, 1, "the refused attempt used its nonce");
    net.submit_sl(&stranger, stranger_nonce, commit(&batch2));
    net.step();
    assert!(
        net.events(|e| matches!(
            e,
            SlEvent::BatchCommitted {
                chain: A,
                batch: 2,
                by: Authority::Anyone
            }
        ))
        .count()
            == 1
    );
}

#[test]
fn deposits_arrive_as_forced_transactions_and_settle_into_the_chain_escrow() {
    let mut net = Net::new(&[A, B]);
    let key = depositor();
    let escrow_before = net.sl.chain(A).unwrap().escrow;
    net.submit_sl(
        &key,
        0,
        SlCall::Deposit {
            chain_id: A,
            recipient: bob(),
            amount: U256::from(7 * ETH),
        },
    );
    // more than the depositor holds: refused, nothing moves
    net.submit_sl(
        &key,
        1,
        SlCall::Deposit {
            chain_id: A,
            recipient: bob(),
            amount: U256::from(10_000 * ETH),
        },
    );
    net.run(10);
    assert!(
        net.events(|e| matches!(
            e,
            SlEvent::TxRejected {
                call: "deposit",
                error: SettlementError::InsufficientSlBalance { .. },
                ..
            }
        ))
        .count()
            == 1
    );
    assert_eq!(
        net.sl.balance(&harness::address_of(&key)),
        U256::from(993 * ETH)
    );
    assert_eq!(
        net.nodes[&A].seq().state().account(&bob()).balance,
        U256::from(7 * ETH)
    );
    assert_eq!(net.nodes[&A].seq().state().totals().deposit_count, 1);
    // settled: the value moved from the pending pool into A's escrow
    assert_eq!(net.sl.pending_deposit_value(), U256::ZERO);
    let a = net.sl.chain(A).unwrap();
    assert_eq!(
        a.escrow + a.executed_totals.burned_fees,
        escrow_before + U256::from(7 * ETH)
    );
}

#[test]
fn a_sequencer_censoring_deposits_cannot_settle_past_the_inclusion_window() {
    let mut net = Net::new(&[A, B]);
    net.nodes.get_mut(&A).unwrap().censor_deposits = true;
    net.step();
    let key = depositor();
    net.submit_sl(
        &key,
        0,
        SlCall::Deposit {
            chain_id: A,
            recipient: bob(),
            amount: U256::from(ETH),
        },
    );
    net.run(14);
    // batches ending within 5 s of the deposit still execute; the first one past it fails
    let failed: Vec<u64> = net
        .events(|e| matches!(e, SlEvent::BatchCheckFailed { chain: A, reason, .. } if reason.contains("censored deposit 0")))
        .map(|e| match e {
            SlEvent::BatchCheckFailed { batch, .. } => *batch,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let last_ok = net.sl.chain(A).unwrap().last_executed;
    assert_eq!(failed[0], last_ok + 1);
    assert!(last_ok >= 1);
    assert!(
        net.sl.chain(B).unwrap().last_executed > last_ok,
        "B keeps settling"
    );
    assert_eq!(net.sl.pending_deposit_value(), U256::from(ETH));
}

/// An importer shown a block the source's batches do not hold (an equivocating sequencer's, or
/// a void one): once the source commits the batch holding that height, the SL sees the
/// imported LocalRoot contradicted and reverts the importer at once (`RevertCause::Contradicted`)
/// instead of leaving it waiting for an extension proof that cannot exist; its operator drops
/// the import and the re-sequenced batch settles.
#[test]
fn an_import_the_source_batch_contradicts_reverts_its_importer() {
    let mut net = Net::new(&[A, B]);
    let forged = braid_primitives::ImportedRoot {
        kind: ImportKind::Precommit as u8,
        sourceChain: A,
        sourceHeight: 1,
        root: alloy_primitives::B256::repeat_byte(0xab),
        messageCount: 1,
    };
    net.nodes
        .get_mut(&B)
        .unwrap()
        .role
        .seq_mut()
        .handle(braid_sequencer::SequencerInput::Import(forged.clone()));
    net.run(12);
    let contradicted: Vec<_> = net
        .events(|e| {
            matches!(e, SlEvent::BatchesReverted {
                chain: B,
                from: 1,
                cause: RevertCause::Contradicted { source_chain: A, height: 1, root },
                ..
            } if *root == forged.root)
        })
        .collect();
    assert_eq!(contradicted.len(), 1, "{:?}", net.sl_events);
    assert!(net.executed(A, 1));
    assert!(net.executed(B, 1), "the re-sequenced batch settles");
    assert!(net.nodes[&B]
        .seq()
        .state()
        .imports()
        .all(|i| i.root != forged.root));
}
