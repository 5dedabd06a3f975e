#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use alloy_primitives::{Address, Bytes, U256};
use braid_execution::TxSigner;
use braid_sequencer::{Sequencer, SequencerConfig, SequencerInput, SequencerOutput};

const CHAIN: ChainId = 901;

fn persist_outputs(store: &ChainStore, outputs: Vec<SequencerOutput>) {
    let mut pending: Option<braid_sequencer::SealedBlock> = None;
    let flush = |b: Option<braid_sequencer::SealedBlock>, batch: Option<&BatchHeader>| {
        if let Some(b) = b {
            store
                .persist_block(&b.block, &b.receipts, &b.changes, batch)
                .unwrap();
        }
    };
    for o in outputs {
        match o {
            SequencerOutput::BlockSealed(b) => {
                flush(pending.take(), None);
                pending = Some(*b);
            }
            SequencerOutput::BatchSealed(batch) => flush(pending.take(), Some(&batch.header)),
            _ => {}
        }
    }
    flush(pending, None);
}

fn setup(dir: &std::path::Path) -> (ChainStore, Sequencer) {
    let store = ChainStore::open(dir.join("chain.redb"), CHAIN).unwrap();
    let mut config = SequencerConfig::new(CHAIN);
    config.batch_blocks = 2;
    let alloc = [(TxSigner::dev(0).address(), U256::from(10u128.pow(21)))];
    let (seq, genesis) = Sequencer::genesis(config, &alloc).unwrap();
    store
        .persist_block(&genesis.block, &genesis.receipts, &genesis.changes, None)
        .unwrap();
    (store, seq)
}

#[test]
fn blocks_state_and_batches_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut seq) = setup(dir.path());
    let signer = TxSigner::dev(0);
    let mut tx_hashes = vec![];
    for t in 1..=3u64 {
        let raw = signer
            .call(
                CHAIN,
                t - 1,
                Address::repeat_byte(7),
                U256::from(t),
                Bytes::new(),
                21_000,
            )
            .unwrap();
        tx_hashes.push(alloy_primitives::keccak256(&raw));
        seq.handle(SequencerInput::SubmitTx { raw });
        persist_outputs(
            &store,
            seq.handle(SequencerInput::Tick { now_ms: t * 1000 }),
        );
    }
    let head_root = seq.head().stateRoot;
    drop(store);

    let store = ChainStore::open(dir.path().join("chain.redb"), CHAIN).unwrap();
    let loaded = store.load().unwrap().unwrap();
    assert_eq!(loaded.head.header, *seq.head());
    let mut state = loaded.state.clone();
    assert_eq!(state.state_root(), head_root);
    assert_eq!(loaded.last_batch, 1);
    assert_eq!(loaded.open_batch.len(), 1);
    assert_eq!(loaded.open_batch[0].header.number, 3);
    assert_eq!(store.batch(1).unwrap().unwrap().lastBlock, 2);
    let loc = store.tx_location(&tx_hashes[1]).unwrap().unwrap();
    assert_eq!(loc, TxLocation { block: 2, index: 0 });
    let receipts = store.receipts(2).unwrap().unwrap();
    assert_eq!(receipts[0].tx_hash, tx_hashes[1]);
    assert_eq!(store.block_number(&seq.head().hash()).unwrap(), Some(3));

    // the restored sequencer continues the same chain
    let mut resumed = Sequencer::restore(
        seq.config().clone(),
        loaded.state,
        loaded.head.header,
        loaded.open_batch,
        loaded.last_batch,
    )
    .unwrap();
    let a = seq.handle(SequencerInput::Tick { now_ms: 4000 });
    let b = resumed.handle(SequencerInput::Tick { now_ms: 4000 });
    assert_eq!(a, b);
}

#[test]
fn wrong_chain_and_out_of_order_blocks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut seq) = setup(dir.path());
    drop(store);
    assert!(matches!(
        ChainStore::open(dir.path().join("chain.redb"), 902),
        Err(StoreError::ChainMismatch {
            stored: CHAIN,
            requested: 902,
            ..
        })
    ));
    let store = ChainStore::open(dir.path().join("chain.redb"), CHAIN).unwrap();
    seq.handle(SequencerInput::Tick { now_ms: 1000 });
    let out = seq.handle(SequencerInput::Tick { now_ms: 2000 });
    let SequencerOutput::BlockSealed(b2) = &out[0] else {
        panic!("no block")
    };
    assert!(matches!(
        store.persist_block(&b2.block, &b2.receipts, &b2.changes, None),
        Err(StoreError::NotNextBlock {
            head: Some(0),
            got: 2
        })
    ));
    assert_eq!(store.head_number().unwrap(), Some(0));
}

#[test]
fn empty_store_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ChainStore::open(dir.path().join("x.redb"), CHAIN).unwrap();
    assert!(store.load().unwrap().is_none());
    assert!(store.block(0).unwrap().is_none());
}

/// Produces and persists `n` blocks, each with a transfer and an outgoing message, and returns
/// every sealed block (genesis excluded) in order.
fn produce_with_messages(
    store: &ChainStore,
    seq: &mut Sequencer,
    n: u64,
) -> Vec<braid_sequencer::SealedBlock> {
    use alloy_sol_types::SolCall;
    use braid_primitives::{IMessenger, MESSENGER_ADDRESS};
    let signer = TxSigner::dev(0);
    let send = IMessenger::sendMessageCall {
        destChain: U256::from(902u64),
        recipient: Address::repeat_byte(9),
        payload: Bytes::from_static(b"undo"),
    }
    .abi_encode();
    let mut sealed = vec![];
    for _ in 0..n {
        let nonce = seq.state().account(&signer.address()).nonce;
        let transfer = signer
            .call(
                CHAIN,
                nonce,
                Address::repeat_byte(7),
                U256::from(nonce + 1),
                Bytes::new(),
                21_000,
            )
            .unwrap();
        let message = signer
            .call(
                CHAIN,
                nonce + 1,
                MESSENGER_ADDRESS,
                U256::from(3u64),
                send.clone().into(),
                200_000,
            )
            .unwrap();
        for raw in [transfer, message] {
            // after a sequencer revert the same transactions may already be back in the pool
            let out = seq.handle(SequencerInput::SubmitTx { raw });
            assert!(
                matches!(
                    &out[..],
                    [SequencerOutput::TxAccepted { .. }]
                        | [SequencerOutput::TxRejected {
                            error: braid_sequencer::SequencerError::Mempool(
                                braid_sequencer::MempoolError::AlreadyKnown(_)
                            ),
                            ..
                        }]
                ),
                "{out:?}"
            );
        }
        let now = seq.next_block_at_ms();
        let out = seq.handle(SequencerInput::Tick { now_ms: now });
        for o in &out {
            if let SequencerOutput::BlockSealed(b) = o {
                assert!(b.block.transactions.len() >= 2);
                sealed.push((**b).clone());
            }
        }
        persist_outputs(store, out);
    }
    sealed
}

#[test]
fn revert_to_block_restores_state_outbox_batches_and_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut seq) = setup(dir.path());
    let blocks = produce_with_messages(&store, &mut seq, 8);
    assert_eq!(store.head_number().unwrap(), Some(8));
    assert_eq!(store.batch(4).unwrap().unwrap().lastBlock, 8);
    let h3 = blocks[2].block.header.clone();
    assert_eq!(h3.number, 3);
    assert_eq!(h3.messageCount, 3);
    assert_ne!(h3.stateRoot, seq.head().stateRoot);
    let reverted_tx = blocks[5].receipts[0].tx_hash; // block 6

    store.revert_to_block(3).unwrap();
    assert_eq!(store.head_number().unwrap(), Some(3));
    let loaded = store.load().unwrap().unwrap();
    assert_eq!(loaded.head.header, h3);
    let mut state = loaded.state.clone();
    assert_eq!(state.state_root(), h3.stateRoot);
    assert_eq!(state.outbox().len(), h3.messageCount);
    assert_eq!(state.outbox().root(), h3.localRoot);
    // batch 2 (blocks 3-4) ended after block 3: gone, block 3 is open again
    assert_eq!(loaded.last_batch, 1);
    assert!(store.batch(2).unwrap().is_none());
    assert_eq!(loaded.open_batch.len(), 1);
    assert_eq!(loaded.open_batch[0].header, h3);
    for n in 4..=8 {
        assert!(store.block(n).unwrap().is_none());
        assert!(store.receipts(n).unwrap().is_none());
        assert!(!store.has_undo_log(n).unwrap());
        assert_eq!(
            store.block_number(&blocks[n as usize - 1].hash).unwrap(),
            None
        );
    }
    assert_eq!(store.tx_location(&reverted_tx).unwrap(), None);
    assert_eq!(store.block_number(&blocks[2].hash).unwrap(), Some(3));
    let kept_tx = blocks[1].receipts[1].tx_hash;
    assert_eq!(
        store.tx_location(&kept_tx).unwrap(),
        Some(TxLocation { block: 2, index: 1 })
    );

    // a sequencer restored from the reverted store builds a new block 4 that persists
    let mut resumed = Sequencer::restore(
        seq.config().clone(),
        loaded.state,
        loaded.head.header,
        loaded.open_batch,
        loaded.last_batch,
    )
    .unwrap();
    let new_blocks = produce_with_messages(&store, &mut resumed, 2);
    assert_eq!(new_blocks[0].block.header.number, 4);
    assert_eq!(new_blocks[0].block.header.parentHash, blocks[2].hash);
    // same transactions at the same time on the restored state: exactly the old block 4
    assert_eq!(new_blocks[0].hash, blocks[3].hash);
    assert_eq!(store.batch(2).unwrap().unwrap().lastBlock, 4);
    drop(store);

    let store = ChainStore::open(dir.path().join("chain.redb"), CHAIN).unwrap();
    let loaded = store.load().unwrap().unwrap();
    assert_eq!(loaded.head.header, *resumed.head());
    assert_eq!(loaded.state.outbox().len(), 5);
    assert_eq!(loaded.last_batch, 2);
    assert_eq!(loaded.open_batch.len(), 1);
}

#[test]
fn revert_errors_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut seq) = setup(dir.path());
    produce_with_messages(&store, &mut seq, 6);
    assert!(matches!(
        store.revert_to_block(7),
        Err(StoreError::RevertBeyondHead {
            head: Some(6),
            target: 7
        })
    ));
    store.finalize_through_block(2).unwrap();
    assert!(!store.has_undo_log(2).unwrap());
    assert!(store.has_undo_log(3).unwrap());
    assert!(matches!(
        store.revert_to_block(1),
        Err(StoreError::UndoMissing { block: 2 })
    ));
    let loaded = store.load().unwrap().unwrap();
    assert_eq!(loaded.head.header, *seq.head());
    assert_eq!(loaded.last_batch, 3);
    // reverting to the head is a no-op; to the finalized block itself works
    store.revert_to_block(6).unwrap();
    assert_eq!(store.head_number().unwrap(), Some(6));
    store.revert_to_block(2).unwrap();
    let loaded = store.load().unwrap().unwrap();
    assert_eq!(loaded.head.header.number, 2);
    assert_eq!(loaded.last_batch, 1);
    assert!(loaded.open_batch.is_empty());
    let empty = ChainStore::open(dir.path().join("empty.redb"), CHAIN).unwrap();
    assert!(matches!(
        empty.revert_to_block(0),
        Err(StoreError::RevertBeyondHead {
            head: None,
            target: 0
        })
    ));
}

#[test]
fn sequencer_revert_and_store_revert_stay_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut seq) = setup(dir.path());
    produce_with_messages(&store, &mut seq, 7); // batches 1-3 sealed, block 7 open
    let outcome = seq.revert_to(1, |_| false).unwrap();
    assert_eq!(outcome.head.number, 2);
    assert_eq!(outcome.reverted_blocks, 3..8);
    assert_eq!(outcome.txs_repooled, 10);
    store.revert_to_block(outcome.head.number).unwrap();
    // the next blocks' changes are relative to the snapshot: the store follows exactly
    produce_with_messages(&store, &mut seq, 3);
    drop(store);
    let store = ChainStore::open(dir.path().join("chain.redb"), CHAIN).unwrap();
    let loaded = store.load().unwrap().unwrap();
    assert_eq!(loaded.head.header, *seq.head());
    assert_eq!(loaded.last_batch, seq.last_batch());
    let mut state = loaded.state;
    assert_eq!(state.outbox().root(), seq.state().outbox().root());
    assert_eq!(state.state_root(), seq.head().stateRoot);
}

#[test]
fn open_existing_refuses_a_missing_empty_or_chainless_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    match ChainStore::open_existing(&path, CHAIN) {
        Err(e @ StoreError::Missing { .. }) => {
            assert!(e.to_string().contains(&path.display().to_string()), "{e}")
        }
        other => panic!("a missing file gave {other:?}"),
    }
    assert!(!path.exists(), "open_existing created the file");

    // a store that holds a chain, then truncated to zero bytes
    let (store, _) = setup(dir.path());
    drop(store);
    ChainStore::open_existing(&path, CHAIN).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    match ChainStore::open_existing(&path, CHAIN) {
        Err(e @ StoreError::Empty { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("0 bytes"), "{msg}");
        }
        other => panic!("a zero-length file gave {other:?}"),
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        0,
        "file was rewritten"
    );

    // a valid redb file in which no chain was ever stored
    let other = dir.path().join("other.redb");
    drop(redb::Database::create(&other).unwrap());
    assert!(matches!(
        ChainStore::open_existing(&other, CHAIN),
        Err(StoreError::Empty { .. })
    ));
    // `open` initialises it, but until a block is stored it still holds no chain
    drop(ChainStore::open(&other, CHAIN).unwrap());
    assert!(matches!(
        ChainStore::open_existing(&other, CHAIN),
        Err(StoreError::Empty { .. })
    ));
}

#[test]
fn open_existing_refuses_another_chain_and_a_truncated_file_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let (store, _) = setup(dir.path());
    drop(store);
    let e = ChainStore::open_existing(&path, 902).unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::ChainMismatch {
                stored: CHAIN,
                requested: 902,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");

    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    for result in [
        ChainStore::open_existing(&path, CHAIN),
        ChainStore::open(&path, CHAIN),
    ] {
        let e = result.unwrap_err();
        assert!(matches!(e, StoreError::Open { .. }), "{e:?}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
}

fn transfer(nonce: u64) -> Bytes {
    TxSigner::dev(0)
        .call(
            CHAIN,
            nonce,
            Address::repeat_byte(7),
            U256::from(1u64),
            Bytes::new(),
            21_000,
        )
        .unwrap()
}

fn journaled(store: &ChainStore) -> Vec<B256> {
    store
        .journaled_txs()
        .unwrap()
        .into_iter()
        .map(|(h, raw)| {
            assert_eq!(
                h,
                keccak256(&raw),
                "journal key is not the hash of its bytes"
            );
            h
        })
        .collect()
}

#[test]
fn the_pool_journal_survives_reopening_and_follows_inclusion_and_reverts() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut seq) = setup(dir.path());
    let (a, b, c) = (transfer(0), transfer(1), transfer(2));
    let (ha, hb, hc) = (keccak256(&a), keccak256(&b), keccak256(&c));
    store.journal_tx(&ha, &a, &[]).unwrap();
    store.journal_tx(&hb, &b, &[]).unwrap();
    // a replacement forgets what it displaced
    store.journal_tx(&hc, &c, &[hb]).unwrap();
    store.journal_tx(&hb, &b, &[]).unwrap();
    let mut want = vec![ha, hb, hc];
    want.sort();
    assert_eq!(journaled(&store), want);
    drop(store);

    // the journal is durable: a reopened store (as after a crash) still has it
    let store = ChainStore::open_existing(dir.path().join("chain.redb"), CHAIN).unwrap();
    assert_eq!(journaled(&store), want);

    // a block including a and b removes them in the block's own transaction
    for raw in [&a, &b] {
        seq.handle(SequencerInput::SubmitTx { raw: raw.clone() });
    }
    persist_outputs(&store, seq.handle(SequencerInput::Tick { now_ms: 1000 }));
    assert_eq!(store.head_number().unwrap(), Some(1));
    assert_eq!(journaled(&store), vec![hc]);

    // reverting the block puts its transactions back
    store.revert_to_block(0).unwrap();
    assert_eq!(journaled(&store), want);

    store
        .unjournal_txs(&[ha, hc, B256::repeat_byte(1)])
        .unwrap();
    assert_eq!(journaled(&store), vec![hb]);
}
