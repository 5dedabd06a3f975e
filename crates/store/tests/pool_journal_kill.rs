//! The pool journal survives a process that dies right after acknowledging transactions, with
//! no block (no durable commit) in between: the entries committed to redb without a sync are
//! lost with the process, and the write-ahead file next to the database brings them back.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use alloy_primitives::{keccak256, B256};
use braid_store::ChainStore;

const CHAIN: u64 = 901;
const CHILD_ENV: &str = "BRAID_JOURNAL_KILL_DIR";
const TEST_NAME: &str = "journaled_transactions_survive_a_kill_before_any_block";

fn raw(i: u32) -> Vec<u8> {
    format!("transaction {i}").into_bytes()
}

/// The child: journal 50 transactions (a replacement and a removal among them), say so, and die
/// without unwinding, flushing or closing anything.
fn run_child(dir: &Path) -> ! {
    let store = ChainStore::open(dir.join("chain.redb"), CHAIN).unwrap();
    for i in 0..50 {
        let r = raw(i);
        store.journal_tx(&keccak256(&r), &r, &[]).unwrap();
    }
    // 50 replaces 49; 48 leaves the pool
    let r = raw(50);
    store
        .journal_tx(&keccak256(&r), &r, &[keccak256(raw(49))])
        .unwrap();
    store.unjournal_txs(&[keccak256(raw(48))]).unwrap();
    std::process::abort();
}

#[test]
fn journaled_transactions_survive_a_kill_before_any_block() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        run_child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, dir.path())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must die, not return");
    let store = ChainStore::open(dir.path().join("chain.redb"), CHAIN).unwrap();
    let got: Vec<B256> = store
        .journaled_txs()
        .unwrap()
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    let mut want: Vec<B256> = (0..48).chain([50]).map(|i| keccak256(raw(i))).collect();
    want.sort();
    assert_eq!(got, want);
    for (h, r) in store.journaled_txs().unwrap() {
        assert_eq!(keccak256(&r), h);
    }
    // replayed into the database durably: the write-ahead file is empty again
    let wal = dir.path().join("chain.redb.pool-wal");
    assert_eq!(std::fs::metadata(wal).unwrap().len(), 0);
}
