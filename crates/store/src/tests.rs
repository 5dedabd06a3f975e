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
            requested: 902
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
