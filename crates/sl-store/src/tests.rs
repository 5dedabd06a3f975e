#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use alloy_primitives::Address;
use braid_proof::ReExecution;
use braid_settlement::{SettlementError, SlCall};

fn council() -> B256 {
    keccak256(b"council")
}

fn config() -> SlConfig {
    let address = braid_execution::TxSigner::from_secret(council())
        .unwrap()
        .address();
    let mut c = SlConfig::new(address);
    c.sl_block_time_ms = 1_000;
    c
}

/// A valid transaction that the SL rejects at inclusion (unknown chain): cheap to log.
fn tx(nonce: u64) -> SlTx {
    SlTx::sign(
        &council(),
        nonce,
        SlCall::RevertBatches {
            chain_id: 7,
            from: nonce + 1,
        },
    )
    .unwrap()
}

fn block(now_ms: u64, txs: usize) -> LoggedBlock {
    LoggedBlock {
        now_ms,
        txs: (0..txs as u64).map(tx).collect(),
    }
}

fn fresh() -> Box<dyn ProofSystem + Send> {
    Box::new(ReExecution::new())
}

#[test]
fn append_and_reopen_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sl.redb");
    let logged = vec![block(0, 2), block(1_000, 0), block(2_500, 3)];
    {
        let store = SlStore::open(&path, &config()).unwrap();
        assert_eq!(store.head().unwrap(), 0);
        assert!(store.blocks().unwrap().is_empty());
        for (i, b) in logged.iter().enumerate() {
            store.append(i as u64 + 1, b).unwrap();
        }
    }
    let store = SlStore::open(&path, &config()).unwrap();
    assert_eq!(
        store.config_fingerprint(),
        config_fingerprint(&config()).unwrap()
    );
    assert_eq!(store.head().unwrap(), 3);
    assert_eq!(store.blocks().unwrap(), logged);
    assert_eq!(store.block(3).unwrap().as_ref(), Some(&logged[2]));
    assert_eq!(store.block(4).unwrap(), None);
}

#[test]
fn non_consecutive_append_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = SlStore::open(dir.path().join("sl.redb"), &config()).unwrap();
    assert!(matches!(
        store.append(2, &block(0, 0)),
        Err(SlStoreError::NotNextHeight { head: 0, got: 2 })
    ));
    assert!(matches!(
        store.append(0, &block(0, 0)),
        Err(SlStoreError::NotNextHeight { head: 0, got: 0 })
    ));
    store.append(1, &block(0, 1)).unwrap();
    assert!(matches!(
        store.append(1, &block(1_000, 0)),
        Err(SlStoreError::NotNextHeight { head: 1, got: 1 })
    ));
    assert!(matches!(
        store.append(3, &block(1_000, 0)),
        Err(SlStoreError::NotNextHeight { head: 1, got: 3 })
    ));
    assert_eq!(store.head().unwrap(), 1);
    assert_eq!(store.blocks().unwrap(), vec![block(0, 1)]);
}

#[test]
fn reopening_with_another_config_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sl.redb");
    SlStore::open(&path, &config())
        .unwrap()
        .append(1, &block(0, 0))
        .unwrap();
    let mut other = config();
    other.max_pending_txs += 1;
    match SlStore::open(&path, &other) {
        Err(SlStoreError::ConfigMismatch { stored, requested }) => {
            assert_eq!(stored, config_fingerprint(&config()).unwrap());
            assert_eq!(requested, config_fingerprint(&other).unwrap());
        }
        other => panic!("expected ConfigMismatch, got {other:?}"),
    }
    other.security_council = Address::repeat_byte(1);
    assert!(matches!(
        PersistentSl::open(&path, other, fresh()),
        Err(SlStoreError::ConfigMismatch { .. })
    ));
    // the log is untouched and still opens with its own config
    let (node, replayed) = PersistentSl::open(&path, config(), fresh()).unwrap();
    assert_eq!((replayed, node.sl().height()), (1, 1));
}

#[test]
fn invalid_config_is_a_typed_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sl.redb");
    let mut bad = config();
    bad.sl_block_time_ms = 0;
    assert!(matches!(
        PersistentSl::open(&path, bad, fresh()),
        Err(SlStoreError::InvalidConfig(
            SettlementError::InvalidConfig { .. }
        ))
    ));
    assert!(!path.exists());
}

#[test]
fn corrupt_records_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sl.redb");
    {
        let store = SlStore::open(&path, &config()).unwrap();
        store.append(1, &block(0, 1)).unwrap();
        store.append(2, &block(1_000, 1)).unwrap();
        // overwrite block 2 with garbage, directly in the table
        let tx = store.db.begin_write().unwrap();
        tx.open_table(SL_BLOCKS)
            .unwrap()
            .insert(2, [0xffu8; 5].as_slice())
            .unwrap();
        tx.commit().unwrap();
        assert!(matches!(store.block(1), Ok(Some(_))));
        assert!(matches!(
            store.block(2),
            Err(SlStoreError::Corrupt {
                what: "logged SL block",
                ..
            })
        ));
        assert!(matches!(store.blocks(), Err(SlStoreError::Corrupt { .. })));
    }
    assert!(matches!(
        PersistentSl::open(&path, config(), fresh()),
        Err(SlStoreError::Corrupt { .. })
    ));

    // a garbage head
    let store = SlStore::open(&path, &config()).unwrap();
    let tx = store.db.begin_write().unwrap();
    tx.open_table(META)
        .unwrap()
        .insert(META_HEAD, [1u8, 2, 3].as_slice())
        .unwrap();
    tx.commit().unwrap();
    assert!(matches!(
        store.head(),
        Err(SlStoreError::Corrupt {
            what: "head height",
            ..
        })
    ));
    drop(store);
    assert!(matches!(
        SlStore::open(&path, &config()),
        Err(SlStoreError::Corrupt { .. })
    ));
}

#[test]
fn a_head_that_disagrees_with_the_blocks_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sl.redb");
    {
        let store = SlStore::open(&path, &config()).unwrap();
        store.append(1, &block(0, 0)).unwrap();
        let tx = store.db.begin_write().unwrap();
        tx.open_table(SL_BLOCKS)
            .unwrap()
            .insert(
                3,
                postcard::to_allocvec(&block(5_000, 0)).unwrap().as_slice(),
            )
            .unwrap();
        tx.commit().unwrap();
        assert!(matches!(store.blocks(), Err(SlStoreError::Corrupt { .. })));
    }
    assert!(matches!(
        SlStore::open(&path, &config()),
        Err(SlStoreError::Corrupt { .. })
    ));
}

#[test]
fn a_log_that_does_not_reproduce_is_replay_diverged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sl.redb");
    {
        let store = SlStore::open(&path, &config()).unwrap();
        store.append(1, &block(0, 0)).unwrap();
        // 500 ms after block 1: no block is due yet with 1 s SL blocks
        store.append(2, &block(500, 0)).unwrap();
    }
    assert!(matches!(
        PersistentSl::open(&path, config(), fresh()),
        Err(SlStoreError::ReplayDiverged { height: 2, .. })
    ));
}

#[test]
fn only_accepted_txs_are_logged_and_pending_ones_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sl.redb");
    {
        let (mut node, replayed) = PersistentSl::open(&path, config(), fresh()).unwrap();
        assert_eq!(replayed, 0);
        let mut forged = tx(0);
        forged.from = Address::repeat_byte(9);
        let events = node.submit(forged);
        assert!(matches!(
            &events[..],
            [SlEvent::TxRejected {
                error: SettlementError::BadSignature { .. },
                ..
            }]
        ));
        assert!(node.buffered().is_empty());
        assert!(node.submit(tx(0)).is_empty());
        assert!(node.submit(tx(1)).is_empty());
        assert_eq!(node.buffered().len(), 2);
        let events = node.tick(0).unwrap();
        assert!(matches!(
            events.last(),
            Some(SlEvent::SlBlock { height: 1, .. })
        ));
        assert!(node.buffered().is_empty());
        assert_eq!(node.store().blocks().unwrap(), vec![block(0, 2)]);
        // a tick before the next block is due logs nothing
        assert!(node.tick(999).unwrap().is_empty());
        assert_eq!(node.store().head().unwrap(), 1);
        // accepted, not yet in a block: journaled, so it survives the node going down
        assert!(node.submit(tx(2)).is_empty());
        assert_eq!(node.store().pending().unwrap(), vec![tx(2)]);
    }
    let reference = {
        let mut sl = SettlementLayer::new(config(), fresh()).unwrap();
        sl.handle(SlInput::Submit(Box::new(tx(0))));
        sl.handle(SlInput::Submit(Box::new(tx(1))));
        sl.handle(SlInput::Tick { now_ms: 0 });
        state_fingerprint(&sl)
    };
    let (mut node, replayed) = PersistentSl::open(&path, config(), fresh()).unwrap();
    assert_eq!(replayed, 1);
    assert_eq!(node.buffered(), &[tx(2)][..]);
    assert_eq!(node.state_fingerprint(), reference);
    // the journaled transaction is the next block's, and the block's append empties the journal
    let events = node.tick(1_000).unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SlEvent::SlBlock { height: 2, .. })),
        "{events:?}"
    );
    assert_eq!(
        node.store().block(2).unwrap(),
        Some(LoggedBlock {
            now_ms: 1_000,
            txs: vec![tx(2)]
        })
    );
    assert!(node.store().pending().unwrap().is_empty());
    assert!(node.buffered().is_empty());
    drop(node);
    // reopened again: nothing pending, nothing submitted twice
    let (node, replayed) = PersistentSl::open(&path, config(), fresh()).unwrap();
    assert_eq!(replayed, 2);
    assert!(node.buffered().is_empty());
}

#[test]
fn a_failed_append_poisons_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, _) = PersistentSl::open(dir.path().join("sl.redb"), config(), fresh()).unwrap();
    // someone else took height 1: the node's own block 1 cannot be logged
    node.store().append(1, &block(0, 0)).unwrap();
    assert!(matches!(
        node.tick(0),
        Err(SlStoreError::NotNextHeight { head: 1, got: 1 })
    ));
    assert!(matches!(node.tick(1_000), Err(SlStoreError::Poisoned)));
}

#[test]
fn the_fingerprint_tracks_the_state() {
    let mut sl = SettlementLayer::new(config(), fresh()).unwrap();
    let empty = state_fingerprint(&sl);
    sl.handle(SlInput::Tick { now_ms: 0 });
    let one = state_fingerprint(&sl);
    assert_ne!(empty, one);
    sl.handle(SlInput::Submit(Box::new(tx(0))));
    sl.handle(SlInput::Tick { now_ms: 1_000 });
    assert_ne!(one, state_fingerprint(&sl));
}

#[test]
fn open_existing_refuses_a_missing_empty_or_unused_log_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sl.redb");
    let named = |e: &SlStoreError| e.to_string().contains(&path.display().to_string());
    match PersistentSl::open_existing_with_events(&path, config(), fresh()) {
        Err(e @ SlStoreError::Missing { .. }) => assert!(named(&e), "{e}"),
        other => panic!("a missing log gave {:?}", other.map(|_| ())),
    }
    assert!(!path.exists(), "open_existing created the file");

    // a log with blocks, then truncated to zero bytes
    {
        let store = SlStore::open(&path, &config()).unwrap();
        store.append(1, &block(0, 1)).unwrap();
    }
    let (_, events) = PersistentSl::open_existing_with_events(&path, config(), fresh()).unwrap();
    assert!(!events.is_empty());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    match SlStore::open_existing(&path, &config()) {
        Err(e @ SlStoreError::Empty { .. }) => {
            assert!(named(&e), "{e}");
            assert!(e.to_string().contains("0 bytes"), "{e}");
        }
        other => panic!("a zero-length log gave {other:?}"),
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        0,
        "file was rewritten"
    );

    // a valid redb file that never held a log
    let other = dir.path().join("other.redb");
    drop(redb::Database::create(&other).unwrap());
    assert!(matches!(
        SlStore::open_existing(&other, &config()),
        Err(SlStoreError::Empty { .. })
    ));
}

#[test]
fn a_log_truncated_to_half_is_an_open_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sl.redb");
    {
        let store = SlStore::open(&path, &config()).unwrap();
        for h in 1..=20 {
            store.append(h, &block(h * 1_000, 2)).unwrap();
        }
    }
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    for result in [
        SlStore::open_existing(&path, &config()),
        SlStore::open(&path, &config()),
    ] {
        let e = result.unwrap_err();
        assert!(matches!(e, SlStoreError::Open { .. }), "{e:?}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
}
