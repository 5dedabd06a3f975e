//! A chain whose batches the settlement layer reverts re-sequences from its last valid batch:
//! reverted user transactions return to the pool, imports declared invalid are not re-imported,
//! valid ones are, and a transaction proven against an invalid import is dropped.
#![allow(clippy::unwrap_used, clippy::panic)]

use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_sol_types::{SolCall, SolEvent};
use braid_execution::{execute_block, ChainState, ExecutionError, ImportKey, TxSigner};
use braid_primitives::{Block, IMessenger, ImportKind, ImportedRoot, Message, MESSENGER_ADDRESS};
use braid_sequencer::{
    SealedBatch, SealedBlock, Sequencer, SequencerConfig, SequencerInput, SequencerOutput,
};

const A: u64 = 901;
const B: u64 = 902;
const ETH: u128 = 1_000_000_000_000_000_000;

fn alloc() -> Vec<(Address, U256)> {
    (0..4)
        .map(|i| (TxSigner::dev(i).address(), U256::from(10 * ETH)))
        .collect()
}

fn chain(id: u64) -> Sequencer {
    let mut c = SequencerConfig::new(id);
    c.batch_blocks = 2;
    Sequencer::genesis(c, &alloc()).unwrap().0
}

fn submit(seq: &mut Sequencer, raw: Bytes) -> B256 {
    let out = seq.handle(SequencerInput::SubmitTx { raw });
    match &out[..] {
        [SequencerOutput::TxAccepted { hash, .. }] => *hash,
        _ => panic!("{out:?}"),
    }
}

fn queue(seq: &mut Sequencer, import: &ImportedRoot) {
    let out = seq.handle(SequencerInput::Import(import.clone()));
    assert!(
        matches!(&out[..], [SequencerOutput::ImportQueued(_)]),
        "{out:?}"
    );
}

/// Produces the next block; returns the outputs, the sealed block and the batch it sealed.
fn produce(seq: &mut Sequencer) -> (Vec<SequencerOutput>, SealedBlock, Option<SealedBatch>) {
    let now = seq.next_block_at_ms();
    let out = seq.handle(SequencerInput::Tick { now_ms: now });
    let block = out
        .iter()
        .find_map(|o| match o {
            SequencerOutput::BlockSealed(b) => Some((**b).clone()),
            _ => None,
        })
        .unwrap();
    let batch = out.iter().find_map(|o| match o {
        SequencerOutput::BatchSealed(b) => Some((**b).clone()),
        _ => None,
    });
    (out, block, batch)
}

fn transfer(signer: u32, nonce: u64) -> Bytes {
    TxSigner::dev(signer)
        .call(
            B,
            nonce,
            Address::repeat_byte(0x70 + signer as u8),
            U256::from(1_000u64),
            Bytes::new(),
            21_000,
        )
        .unwrap()
}

fn import(kind: ImportKind, source: u64, height: u64, root: u8) -> ImportedRoot {
    ImportedRoot {
        kind: kind as u8,
        sourceChain: source,
        sourceHeight: height,
        root: B256::repeat_byte(root),
        messageCount: 1,
    }
}

fn replay(blocks: &[Block]) -> ChainState {
    let mut state = ChainState::genesis(B, &alloc());
    let mut parent = None;
    for block in blocks {
        let parent_hash = parent.unwrap_or(block.header.parentHash);
        execute_block(&mut state, parent_hash, block).unwrap();
        parent = Some(block.header.hash());
    }
    state
}

#[test]
fn revert_re_sequences_without_invalid_imports() {
    // chain A: block 1 sends a message to B; B imports A's LocalRoot after it (pre-commit)
    let mut a = chain(A);
    let alice = TxSigner::dev(0);
    let bob = Address::repeat_byte(0xb0);
    let send = IMessenger::sendMessageWithModeCall {
        destChain: U256::from(B),
        recipient: bob,
        payload: Bytes::from_static(b"reverted"),
        mode: ImportKind::Precommit as u8,
    }
    .abi_encode();
    submit(
        &mut a,
        alice
            .call(
                A,
                0,
                MESSENGER_ADDRESS,
                U256::from(ETH),
                send.into(),
                200_000,
            )
            .unwrap(),
    );
    let (_, a1, _) = produce(&mut a);
    let decoded = IMessenger::MessageSent::decode_log_data(&a1.receipts[0].logs[0].data).unwrap();
    let message = Message {
        sourceChain: A,
        nonce: 0,
        sender: alice.address(),
        destChain: B,
        recipient: bob,
        value: decoded.value,
        mode: decoded.mode,
        payload: decoded.payload.clone(),
    };
    let bad = ImportedRoot {
        kind: ImportKind::Precommit as u8,
        sourceChain: A,
        sourceHeight: 1,
        root: a1.block.header.localRoot,
        messageCount: a1.block.header.messageCount,
    };
    let tree = a.state().outbox();
    let p = tree.inclusion_proof(0, 1).unwrap();
    let proof =
        braid_execution::single_level_proof(ImportKind::Precommit, tree.root_at(1).unwrap(), p);
    let exec_raw = TxSigner::dev(2)
        .call(
            B,
            0,
            MESSENGER_ADDRESS,
            U256::ZERO,
            IMessenger::executeMessageCall {
                message: message.clone(),
                proof,
            }
            .abi_encode()
            .into(),
            300_000,
        )
        .unwrap();

    let ok0 = import(ImportKind::Proof, 777, 1, 0x10);
    let ok1 = import(ImportKind::Commit, 903, 1, 0x11);
    let ok2 = import(ImportKind::Commit, 903, 2, 0x12);
    let pending = import(ImportKind::Proof, 777, 2, 0x13);

    // chain B: batch 1 = blocks 1-2, batch 2 = blocks 3-4, batch 3 = blocks 5-6, block 7 open
    let mut b = chain(B);
    let mut kept_blocks = vec![];
    queue(&mut b, &ok0);
    submit(&mut b, transfer(0, 0));
    kept_blocks.push(produce(&mut b).1.block);
    submit(&mut b, transfer(1, 0));
    let (_, b2, batch1) = produce(&mut b);
    kept_blocks.push(b2.block);
    let batch1 = batch1.unwrap();
    assert_eq!(batch1.blocks, kept_blocks);

    queue(&mut b, &bad);
    queue(&mut b, &ok1);
    let mut reverted_txs = vec![submit(&mut b, transfer(0, 1))];
    let (_, b3, _) = produce(&mut b);
    assert_eq!(b3.block.imports, vec![bad.clone(), ok1.clone()]);
    let exec_hash = submit(&mut b, exec_raw);
    reverted_txs.push(exec_hash);
    let (_, b4, batch2) = produce(&mut b);
    assert!(batch2.is_some());
    assert_eq!(b4.receipts[0].message_executed, Some(message.id()));
    assert_eq!(b.state().account(&bob).balance, U256::from(ETH));
    queue(&mut b, &ok2);
    reverted_txs.push(submit(&mut b, transfer(1, 1)));
    produce(&mut b);
    let (_, _, batch3) = produce(&mut b);
    assert!(batch3.is_some());
    reverted_txs.push(submit(&mut b, transfer(0, 2)));
    let (_, b7, _) = produce(&mut b);
    assert_eq!(b7.block.header.number, 7);
    assert_eq!(b.last_batch(), 3);
    // still pending at revert time: a valid import and the invalid one again
    queue(&mut b, &pending);
    queue(&mut b, &bad);
    let schedule = b.next_block_at_ms();
    assert!(b.mempool().is_empty());

    // the SL reverts batches 2 and 3: A's block 1 was reverted, so the import of its root is invalid
    let outcome = b.revert_to(1, |i| *i == bad).unwrap();
    let batch1_end = batch1.blocks.last().unwrap().header.clone();
    assert_eq!(outcome.head, batch1_end);
    assert_eq!(*b.head(), batch1_end);
    assert_eq!(b.last_batch(), 1);
    assert_eq!(outcome.last_batch, 1);
    assert_eq!(outcome.reverted_batches, 2..4);
    assert_eq!(outcome.reverted_blocks, 3..8);
    assert_eq!(b.state_mut().state_root(), batch1.header.stateRoot);
    assert!(b.open_batch().is_empty());
    assert_eq!(b.next_block_at_ms(), schedule);
    // reverted user transactions are back in the pool
    assert_eq!((outcome.txs_repooled, outcome.txs_not_repooled), (4, 0));
    assert_eq!(b.mempool().len(), 4);
    for h in &reverted_txs {
        assert!(b.mempool().contains(h));
    }
    // invalid imports are gone, valid ones re-queued in order before the pending one
    assert_eq!(outcome.imports_dropped, vec![bad.clone(), bad.clone()]);
    assert_eq!(outcome.imports_requeued, vec![ok1.clone(), ok2.clone()]);
    assert_eq!(
        b.pending_imports(),
        &[ok1.clone(), ok2.clone(), pending.clone()]
    );
    assert!(b.state().imported(&ImportKey::of(&bad).unwrap()).is_none());
    assert!(b.state().imported(&ImportKey::of(&ok0).unwrap()).is_some());
    assert_eq!(b.state().account(&bob).balance, U256::ZERO);

    // re-sequencing: the message execution proven against the invalid import is dropped
    let (out, new3, _) = produce(&mut b);
    assert_eq!(new3.block.header.number, 3);
    assert_eq!(new3.block.header.parentHash, batch1_end.hash());
    assert_eq!(new3.block.imports, vec![ok1, ok2, pending]);
    assert!(out.iter().any(|o| matches!(o,
        SequencerOutput::TxDropped { hash, error: ExecutionError::RootNotImported { .. } }
            if *hash == exec_hash)));
    let included: Vec<B256> = new3.receipts.iter().map(|r| r.tx_hash).collect();
    assert_eq!(included.len(), 3);
    for h in [reverted_txs[0], reverted_txs[2], reverted_txs[3]] {
        assert!(included.contains(&h));
    }
    assert!(b.mempool().is_empty());
    assert_eq!(b.state().account(&bob).balance, U256::ZERO);
    let (_, new4, new_batch2) = produce(&mut b);
    let new_batch2 = new_batch2.unwrap();
    assert_eq!(
        (new_batch2.header.number, new_batch2.header.firstBlock),
        (2, 3)
    );

    // a replica executing batch 1 and the new blocks reaches the sequencer's state
    let mut chain_blocks = batch1.blocks.clone();
    chain_blocks.extend([new3.block, new4.block]);
    let mut replica = replay(&chain_blocks);
    assert_eq!(replica.state_root(), b.head().stateRoot);
    assert_eq!(b.state_mut().state_root(), b.head().stateRoot);
    assert!(replica.value_conserved());
}

#[test]
fn revert_is_deterministic() {
    let run = || {
        let mut b = chain(B);
        for n in 0..5u64 {
            submit(&mut b, transfer(0, n));
            submit(&mut b, transfer(1, n));
            queue(&mut b, &import(ImportKind::Proof, 777, n, 0x20 + n as u8));
            produce(&mut b);
        }
        let outcome = b
            .revert_to(1, |i| i.root == B256::repeat_byte(0x23))
            .unwrap();
        let hashes: Vec<B256> = (0..3).map(|_| produce(&mut b).1.hash).collect();
        (outcome, hashes)
    };
    let (outcome, hashes) = run();
    assert_eq!(outcome.reverted_blocks, 3..6);
    assert_eq!(outcome.txs_repooled, 6);
    assert_eq!(outcome.imports_dropped.len(), 1);
    assert_eq!(outcome.imports_requeued.len(), 2);
    assert_eq!((outcome, hashes), run());
}
