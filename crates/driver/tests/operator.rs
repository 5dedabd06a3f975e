//! The operator core in hand-driven scenarios: real sequencers, a real SL and a real relayer
//! (its extension proofs through [`WatchedSources`]), no harness.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolCall as _;
use braid_driver::WatchedSources;
use braid_execution::TxSigner;
use braid_merkle::verify_extension;
use braid_operator::*;
use braid_primitives::{BatchNumber, ChainId, ImportKind, ImportedRoot};
use braid_primitives::{IMessenger, MESSENGER_ADDRESS};
use braid_proof::ReExecution;
use braid_relayer::Relayer;
use braid_relayer::{RelayerAction, RelayerConfig, RelayerInput};
use braid_sequencer::SealedBatch;
use braid_sequencer::{SealedBlock, Sequencer, SequencerConfig, SequencerInput, SequencerOutput};
use braid_settlement::{Authority, ChainGenesis, SlConfig, SlInput, SlTx};
use braid_settlement::{RevertCause, SettlementLayer, SlCall, SlEvent};

const A: ChainId = 901;
const B: ChainId = 902;
const ETH: u128 = 1_000_000_000_000_000_000;

fn secret(tag: &str) -> B256 {
    alloy_primitives::keccak256(tag.as_bytes())
}

fn addr(secret: &B256) -> Address {
    TxSigner::from_secret(*secret).unwrap().address()
}

fn alloc() -> Vec<(Address, U256)> {
    vec![(TxSigner::dev(0).address(), U256::from(100 * ETH))]
}

struct World {
    seqs: BTreeMap<ChainId, Sequencer>,
    sl: SettlementLayer,
    relayer: Relayer,
    ops: BTreeMap<ChainId, Operator>,
    now: u64,
    sealed: Vec<SealedBatch>,
}

fn op_key(chain: ChainId) -> B256 {
    secret(&format!("operator {chain}"))
}

impl World {
    fn new() -> Self {
        let council = secret("council");
        let mut config = SlConfig::new(addr(&council));
        config.sl_block_time_ms = 1_000;
        let mut sl = SettlementLayer::new(config, Box::new(ReExecution::new())).unwrap();
        let mut relayer = Relayer::new(RelayerConfig::new(vec![A, B]).without_pipelining());
        let mut seqs = BTreeMap::new();
        let mut ops = BTreeMap::new();
        for (i, id) in [A, B].into_iter().enumerate() {
            let mut c = SequencerConfig::new(id);
            c.batch_blocks = 2;
            let (seq, genesis) = Sequencer::genesis(c, &alloc()).unwrap();
            let call = SlCall::RegisterChain(ChainGenesis {
                chain_id: id,
                operator: addr(&op_key(id)),
                alloc: alloc(),
                genesis_header: genesis.block.header.clone(),
            });
            let tx = SlTx::sign(&council, i as u64, call).unwrap();
            sl.handle(SlInput::Submit(Box::new(tx)));
            relayer.handle(RelayerInput::SourceBlock {
                block: genesis.block,
                receipts: genesis.receipts,
            });
            seqs.insert(id, seq);
            ops.insert(id, Operator::new(OperatorConfig::new(id)));
        }
        sl.handle(SlInput::Tick { now_ms: 0 });
        Self {
            seqs,
            sl,
            relayer,
            ops,
            now: 0,
            sealed: vec![],
        }
    }

    /// One block on `chain`; blocks go to the relayer, batches to the relayer and the operator.
    /// Returns the block and the relayer's actions.
    fn block(&mut self, chain: ChainId) -> (SealedBlock, Vec<RelayerAction>) {
        let seq = self.seqs.get_mut(&chain).unwrap();
        let now = seq.next_block_at_ms();
        let mut block = None;
        let mut actions = vec![];
        for o in seq.handle(SequencerInput::Tick { now_ms: now }) {
            match o {
                SequencerOutput::BlockSealed(b) => {
                    actions.extend(self.relayer.handle(RelayerInput::SourceBlock {
                        block: b.block.clone(),
                        receipts: b.receipts.clone(),
                    }));
                    block = Some(*b);
                }
                SequencerOutput::BatchSealed(b) => {
                    actions.extend(self.relayer.handle(RelayerInput::BatchSealed {
                        header: b.header.clone(),
                    }));
                    self.ops
                        .get_mut(&chain)
                        .unwrap()
                        .batch_sealed((*b).clone())
                        .unwrap();
                    self.sealed.push(*b);
                }
                _ => {}
            }
        }
        (block.unwrap(), actions)
    }

    /// The operator's calls for `chain` now.
    fn tick_op(&mut self, chain: ChainId) -> Vec<SlCall> {
        self.ops
            .get_mut(&chain)
            .unwrap()
            .tick(&self.sl, &WatchedSources(&self.relayer))
    }

    /// Submits `calls` for `chain` and produces an SL block; every operator observes its events.
    fn sl_block(&mut self, chain: ChainId, calls: Vec<SlCall>) -> Vec<(ChainId, OperatorAction)> {
        let key = op_key(chain);
        let first = self.sl.nonce(&addr(&key));
        for (nonce, call) in (first..).zip(calls) {
            let tx = SlTx::sign(&key, nonce, call).unwrap();
            assert!(self.sl.handle(SlInput::Submit(Box::new(tx))).is_empty());
        }
        self.now += 1_000;
        let events = self.sl.handle(SlInput::Tick { now_ms: self.now });
        assert!(
            events
                .iter()
                .all(|e| !matches!(e, SlEvent::TxRejected { .. })),
            "{events:?}"
        );
        self.observe(&events)
    }

    fn observe(&mut self, events: &[SlEvent]) -> Vec<(ChainId, OperatorAction)> {
        let mut out = vec![];
        for e in events {
            self.relayer.observe_sl(e);
            for (id, op) in &mut self.ops {
                out.extend(op.observe_sl(e).into_iter().map(|a| (*id, a)));
            }
        }
        out
    }
}

fn shape(calls: &[SlCall]) -> Vec<(&'static str, BatchNumber)> {
    calls
        .iter()
        .map(|c| match c {
            SlCall::CommitBatch { header, .. } => ("commit", header.number),
            SlCall::ProveBatch { batch, .. } => ("prove", *batch),
            SlCall::ExecuteBatch { batch, .. } => ("execute", *batch),
            other => panic!("unexpected call {other:?}"),
        })
        .collect()
}

#[test]
fn batches_go_commit_then_prove_then_execute_in_order() {
    let mut w = World::new();
    for _ in 0..4 {
        w.block(A);
    }
    assert_eq!(w.ops[&A].batches().count(), 2);
    // both sealed batches are committed at once, in order (the SL takes them in nonce order)
    let calls = w.tick_op(A);
    assert_eq!(shape(&calls), vec![("commit", 1), ("commit", 2)]);
    // not repeated before the SL produced a block
    assert!(w.tick_op(A).is_empty());
    w.sl_block(A, calls);
    let calls = w.tick_op(A);
    assert_eq!(shape(&calls), vec![("prove", 1), ("prove", 2)]);
    w.sl_block(A, calls);
    let calls = w.tick_op(A);
    assert_eq!(shape(&calls), vec![("execute", 1), ("execute", 2)]);
    let actions = w.sl_block(A, calls);
    assert_eq!(
        actions.last(),
        Some(&(A, OperatorAction::Finalized { through: 2 }))
    );
    assert_eq!(w.sl.chain(A).unwrap().last_executed, 2);
    assert_eq!(w.ops[&A].last_executed(), 2);
    assert_eq!(w.ops[&A].batches().count(), 0);
    assert!(w.tick_op(A).is_empty());

    // a call the SL refused is issued again after the next SL block
    w.block(A);
    w.block(A);
    let calls = w.tick_op(A);
    assert_eq!(shape(&calls), vec![("commit", 3)]);
    w.sl_block(A, vec![]); // the shell lost it
    assert_eq!(shape(&w.tick_op(A)), vec![("commit", 3)]);
}

/// Issue 15, generated seed 300: a chain sealing a batch every second under 2 s SL blocks fell
/// behind for good with one commit per SL block. The operator now commits up to
/// `max_commits_ahead` batches past the SL's view at once, adds newly sealed ones behind
/// those in flight, and sends the whole window again once its first commit is due again.
#[test]
fn a_backlog_is_committed_in_windows_and_a_lost_window_goes_out_again() {
    let mut w = World::new();
    for _ in 0..24 {
        w.block(A);
    }
    assert_eq!(w.ops[&A].batches().count(), 12);
    let ahead = DEFAULT_MAX_COMMITS_AHEAD;
    let calls = w.tick_op(A);
    let first: Vec<_> = (1..=ahead).map(|n| ("commit", n)).collect();
    assert_eq!(shape(&calls), first);
    // nothing new while the window is in flight...
    assert!(w.tick_op(A).is_empty());
    // ...but a batch sealed meanwhile inside the window joins behind the ones in flight
    let mut w2 = World::new();
    for _ in 0..4 {
        w2.block(A);
    }
    assert_eq!(shape(&w2.tick_op(A)), vec![("commit", 1), ("commit", 2)]);
    w2.block(A);
    w2.block(A);
    assert_eq!(shape(&w2.tick_op(A)), vec![("commit", 3)]);
    // the shell lost the first window: after the SL block it goes out again, whole
    w.sl_block(A, vec![]);
    assert_eq!(shape(&w.tick_op(A)), first);
    // this time it lands: the next tick proves those and commits the rest of the backlog
    w.sl_block(A, calls);
    assert_eq!(w.sl.chain(A).unwrap().last_committed, ahead);
    let calls = w.tick_op(A);
    let mut expected: Vec<_> = (1..=ahead).map(|n| ("prove", n)).collect();
    expected.extend((ahead + 1..=12).map(|n| ("commit", n)));
    assert_eq!(shape(&calls), expected);
    w.sl_block(A, calls);
    assert_eq!(w.sl.chain(A).unwrap().last_committed, 12);
}

/// Alice sends a precommit message from A to B (her `nonce`-th transaction).
fn send_a_to_b(w: &mut World, nonce: u64) {
    let raw = TxSigner::dev(0)
        .call(
            A,
            nonce,
            MESSENGER_ADDRESS,
            U256::from(ETH),
            IMessenger::sendMessageWithModeCall {
                destChain: U256::from(B),
                recipient: Address::repeat_byte(0xb0),
                payload: Default::default(),
                mode: ImportKind::Precommit as u8,
            }
            .abi_encode()
            .into(),
            200_000,
        )
        .unwrap();
    w.seqs
        .get_mut(&A)
        .unwrap()
        .handle(SequencerInput::SubmitTx { raw });
}

/// A sends a precommit message to B; B imports A's block-1 LocalRoot in its block 1.
fn b_imports_a_precommit_root(w: &mut World) -> ImportedRoot {
    send_a_to_b(w, 0);
    let (_, actions) = w.block(A);
    let [RelayerAction::Import { dest: B, root }] = &actions[..] else {
        panic!("{actions:?}")
    };
    w.seqs
        .get_mut(&B)
        .unwrap()
        .handle(SequencerInput::Import(root.clone()));
    let (b1, _) = w.block(B);
    assert_eq!(b1.block.imports, vec![root.clone()]);
    w.block(B); // B's batch 1 sealed, holding the import
    root.clone()
}

#[test]
fn execution_is_requested_only_once_every_extension_proof_is_available() {
    let mut w = World::new();
    let import = b_imports_a_precommit_root(&mut w);
    let calls = w.tick_op(B);
    w.sl_block(B, calls);
    let calls = w.tick_op(B);
    assert_eq!(shape(&calls), vec![("prove", 1)]);
    w.sl_block(B, calls);
    // proven, but A's batch 1 is not sealed: no extension proof yet, so no execution request
    assert!(w.relayer.precommit_extension(&import).is_none());
    assert!(w.tick_op(B).is_empty());
    w.sl_block(B, vec![]);
    assert!(w.tick_op(B).is_empty());

    // A's block 2 (with a second message) seals A's batch 1: the proof now exists
    send_a_to_b(&mut w, 1);
    w.block(A);
    let calls = w.tick_op(B);
    assert_eq!(shape(&calls), vec![("execute", 1)]);
    let SlCall::ExecuteBatch {
        extension_proofs, ..
    } = &calls[0]
    else {
        unreachable!()
    };
    let a_batch = w.sealed.iter().find(|b| b.header.chainId == A).unwrap();
    let [p] = &extension_proofs[..] else {
        panic!("{extension_proofs:?}")
    };
    verify_extension(import.root, a_batch.header.chainBatchRoot, p).unwrap();
    assert_eq!((p.old_size, p.new_size), (1, 2));
    assert!(!p.hashes.is_empty());
}

#[test]
fn a_cascade_revert_rolls_the_sequencer_back_without_the_void_imports() {
    let mut w = World::new();
    let import = b_imports_a_precommit_root(&mut w);
    w.block(A);
    // A commits its batch 1, B commits its batch 1 (which imports A's block 1)
    let a_calls = w.tick_op(A);
    assert_eq!(shape(&a_calls), vec![("commit", 1)]);
    w.sl_block(A, a_calls);
    let b_calls = w.tick_op(B);
    assert_eq!(shape(&b_calls), vec![("commit", 1)]);
    w.sl_block(B, b_calls);

    // A's operator reverts A's batch 1: B's batch 1 is reverted in cascade
    let actions = w.sl_block(
        A,
        vec![SlCall::RevertBatches {
            chain_id: A,
            from: 1,
        }],
    );
    assert_eq!(
        actions,
        vec![
            (
                A,
                OperatorAction::RevertSequencer {
                    last_valid_batch: 0,
                    invalid_imports: vec![],
                    cause: RevertCause::Requested(Authority::Operator),
                }
            ),
            (
                B,
                OperatorAction::RevertSequencer {
                    last_valid_batch: 0,
                    invalid_imports: vec![import.clone()],
                    cause: RevertCause::Cascade {
                        source_chain: A,
                        source_batch: 1
                    },
                }
            ),
        ]
    );
    assert_eq!(w.ops[&B].batches().count(), 0);
    assert!(w.tick_op(B).is_empty(), "nothing left to commit");
    // the shell applies it: the void import is dropped, not re-queued
    let outcome = w
        .seqs
        .get_mut(&B)
        .unwrap()
        .revert_to(0, |i| *i == import)
        .unwrap();
    assert_eq!(outcome.imports_dropped, vec![import]);
    assert!(outcome.imports_requeued.is_empty());
    // the re-sealed batch 1 is taken and committed again
    let seq = w.seqs.get_mut(&B).unwrap();
    let mut batch = None;
    for _ in 0..2 {
        let now = seq.next_block_at_ms();
        for o in seq.handle(SequencerInput::Tick { now_ms: now }) {
            if let SequencerOutput::BatchSealed(b) = o {
                batch = Some(*b);
            }
        }
    }
    let op = w.ops.get_mut(&B).unwrap();
    op.batch_sealed(batch.unwrap()).unwrap();
    assert_eq!(shape(&w.tick_op(B)), vec![("commit", 1)]);
}

#[test]
fn batches_of_another_chain_or_out_of_order_are_refused() {
    let mut w = World::new();
    for _ in 0..2 {
        w.block(A);
    }
    let a1 = w.sealed[0].clone();
    let mut op = Operator::new(OperatorConfig::new(B));
    assert_eq!(
        op.batch_sealed(a1.clone()),
        Err(OperatorError::WrongChain {
            expected: B,
            got: A
        })
    );
    let mut op = Operator::new(OperatorConfig::new(A));
    let mut a3 = a1.clone();
    a3.header.number = 3;
    assert!(matches!(
        op.batch_sealed(a3),
        Err(OperatorError::OutOfOrder { got: 3, .. })
    ));
    assert_eq!(op.batches().count(), 0);
    op.batch_sealed(a1).unwrap();
    assert_eq!(op.batches().count(), 1);
}

/// Mutation testing (docs/testing.md) found these unguarded: a prove or an execution request is
/// not repeated before the SL produced a block, is repeated after one without effect, and an
/// operator that only commits, or whose chain is settled by optimistic proposals, never proves.
#[test]
fn proofs_and_execution_requests_wait_one_sl_block_and_only_provers_prove() {
    let mut w = World::new();
    for _ in 0..4 {
        w.block(A);
    }
    let calls = w.tick_op(A);
    assert_eq!(shape(&calls), vec![("commit", 1), ("commit", 2)]);
    w.sl_block(A, calls);
    let proves = w.tick_op(A);
    assert_eq!(shape(&proves), vec![("prove", 1), ("prove", 2)]);
    assert!(w.tick_op(A).is_empty(), "not again in the same SL block");
    w.sl_block(A, vec![]); // the shell lost them
    assert_eq!(shape(&w.tick_op(A)), vec![("prove", 1), ("prove", 2)]);
    w.sl_block(A, proves);
    let executes = w.tick_op(A);
    assert_eq!(shape(&executes), vec![("execute", 1), ("execute", 2)]);
    assert!(w.tick_op(A).is_empty(), "not again in the same SL block");
    w.sl_block(A, vec![]);
    assert_eq!(shape(&w.tick_op(A)), vec![("execute", 1), ("execute", 2)]);
    w.sl_block(A, executes);
    assert_eq!(w.sl.chain(A).unwrap().last_executed, 2);

    for (commit_only, by_proposals) in [(true, false), (false, true)] {
        let mut w = World::new();
        let mut config = OperatorConfig::new(A);
        config.prove_and_execute = !commit_only;
        config.settled_by_proposals = by_proposals;
        w.ops.insert(A, Operator::new(config));
        for _ in 0..4 {
            w.block(A);
        }
        let calls = w.tick_op(A);
        assert_eq!(shape(&calls), vec![("commit", 1), ("commit", 2)]);
        w.sl_block(A, calls);
        for _ in 0..3 {
            assert!(
                w.tick_op(A).is_empty(),
                "commit only {commit_only}, by proposals {by_proposals}: no proof"
            );
            w.sl_block(A, vec![]);
        }
    }
}
