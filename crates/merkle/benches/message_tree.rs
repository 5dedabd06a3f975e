//! Throughput of the message tree: appends per second versus the raw keccak256 rate on 64-byte
//! inputs (one `hash_pair`), which bounds it. Run with
//! `cargo bench -p braid-merkle --bench message_tree`.

#![allow(clippy::unwrap_used)]

use alloy_primitives::{keccak256, B256};
use braid_merkle::{hash_pair, MessageTree};
use divan::{black_box, counter::ItemsCount, Bencher};

fn main() {
    divan::main();
}

fn leaves(n: u64) -> Vec<B256> {
    (0..n).map(|i| keccak256(i.to_be_bytes())).collect()
}

/// Appends `n` leaves into a fresh tree (counter: appended leaves).
#[divan::bench(args = [10_000])]
fn append(bencher: Bencher, n: u64) {
    let ls = leaves(n);
    bencher.counter(ItemsCount::new(n)).bench_local(|| {
        let mut tree = MessageTree::new();
        for l in &ls {
            tree.append(*l).unwrap();
        }
        tree
    });
}

/// Appends `n` leaves and then computes the committed root once (a block with `n` messages).
#[divan::bench(args = [100, 10_000])]
fn append_then_root(bencher: Bencher, n: u64) {
    let ls = leaves(n);
    bencher.counter(ItemsCount::new(n)).bench_local(|| {
        let mut tree = MessageTree::new();
        for l in &ls {
            tree.append(*l).unwrap();
        }
        tree.root()
    });
}

/// Current root of a 10 000-leaf tree (33 hashes).
#[divan::bench]
fn root(bencher: Bencher) {
    let tree = MessageTree::from_leaves(leaves(10_000)).unwrap();
    bencher.bench_local(|| black_box(&tree).root());
}

/// Raw keccak256 of a 64-byte input (one pair hash), 1000 per iteration (counter: hashes).
#[divan::bench]
fn keccak256_64_bytes(bencher: Bencher) {
    let a = keccak256([1u8]);
    let b = keccak256([2u8]);
    bencher.counter(ItemsCount::new(1000usize)).bench_local(|| {
        let mut acc = a;
        for _ in 0..1000 {
            let mut buf = [0u8; 64];
            buf[..32].copy_from_slice(acc.as_slice());
            buf[32..].copy_from_slice(b.as_slice());
            acc = keccak256(black_box(buf));
        }
        acc
    });
}

/// Same as `keccak256_64_bytes` through the crate's `hash_pair`.
#[divan::bench]
fn hash_pair_64_bytes(bencher: Bencher) {
    let a = keccak256([1u8]);
    let b = keccak256([2u8]);
    bencher.counter(ItemsCount::new(1000usize)).bench_local(|| {
        let mut acc = a;
        for _ in 0..1000 {
            acc = hash_pair(black_box(&acc), &b);
        }
        acc
    });
}
