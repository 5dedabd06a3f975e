//! What journaling one accepted pool transaction costs (`ChainStore::journal_tx`: one durable
//! redb write transaction, fsynced before the sender gets the hash), against nothing else.
//!
//! `cargo run --release -p braid-store --example pool_journal_cost`
#![allow(clippy::unwrap_used)]

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = braid_store::ChainStore::open(dir.path().join("chain.redb"), 901).unwrap();
    let raw = vec![7u8; 200]; // about one signed transfer
    let n = 2_000u64;
    let t = std::time::Instant::now();
    for i in 0..n {
        let hash = alloy_primitives::keccak256(i.to_be_bytes());
        store.journal_tx(&hash, &raw, &[]).unwrap();
    }
    let e = t.elapsed();
    println!(
        "{n} journal writes in {e:?}: {:.0} per s, {:.2} ms each",
        n as f64 / e.as_secs_f64(),
        e.as_secs_f64() * 1_000.0 / n as f64
    );
}
