//! Benchmarks for the sparse Merkle tree: batched updates and proofs on a 100k-leaf tree.

use alloy_primitives::{keccak256, B256};
use braid_state::{verify_proof, SparseMerkleTree};
use divan::Bencher;
use rand::{rngs::StdRng, Rng, SeedableRng};

const LEAVES: u64 = 100_000;
const BATCH: usize = 1_000;

fn main() {
    divan::main();
}

fn key(i: u64) -> B256 {
    keccak256(i.to_be_bytes())
}

fn base_tree() -> SparseMerkleTree {
    SparseMerkleTree::from_leaves((0..LEAVES).map(|i| (key(i), key(i + LEAVES))))
}

/// 1000 writes: ~60% overwrites of existing keys, ~30% new keys, ~10% deletes.
fn random_updates(rng: &mut StdRng) -> Vec<(B256, B256)> {
    (0..BATCH)
        .map(|_| {
            let value = B256::from(rng.gen::<[u8; 32]>());
            match rng.gen_range(0..10) {
                0..=5 => (key(rng.gen_range(0..LEAVES)), value),
                6..=8 => (B256::from(rng.gen::<[u8; 32]>()), value),
                _ => (key(rng.gen_range(0..LEAVES)), B256::ZERO),
            }
        })
        .collect()
}

/// `apply_batch` of 1000 random writes into a tree of ~100k leaves (the tree evolves across
/// iterations; its size stays within a few percent of 100k).
#[divan::bench(sample_count = 100, sample_size = 1)]
fn apply_batch_1000_into_100k(bencher: Bencher) {
    let mut tree = base_tree();
    let mut rng = StdRng::seed_from_u64(1);
    bencher
        .with_inputs(|| random_updates(&mut rng))
        .bench_local_values(|updates| tree.apply_batch(updates));
}

/// A single `insert` into a 100k-leaf tree.
#[divan::bench(sample_count = 100, sample_size = 10)]
fn insert_one_into_100k(bencher: Bencher) {
    let mut tree = base_tree();
    let mut rng = StdRng::seed_from_u64(2);
    bencher
        .with_inputs(|| {
            (
                key(rng.gen_range(0..LEAVES)),
                B256::from(rng.gen::<[u8; 32]>()),
            )
        })
        .bench_local_values(|(k, v)| tree.insert(k, v));
}

/// `prove` for a random key (present or absent) in a 100k-leaf tree.
#[divan::bench]
fn prove_in_100k(bencher: Bencher) {
    let tree = base_tree();
    let mut rng = StdRng::seed_from_u64(3);
    bencher
        .with_inputs(|| key(rng.gen_range(0..2 * LEAVES)))
        .bench_local_refs(|k| tree.prove(k));
}

/// `verify_proof` of an inclusion proof from a 100k-leaf tree.
#[divan::bench]
fn verify_in_100k(bencher: Bencher) {
    let tree = base_tree();
    let root = tree.root();
    let mut rng = StdRng::seed_from_u64(4);
    bencher
        .with_inputs(|| {
            let i = rng.gen_range(0..LEAVES);
            (key(i), key(i + LEAVES), tree.prove(&key(i)))
        })
        .bench_local_refs(|(k, v, proof)| verify_proof(root, *k, Some(*v), proof));
}

/// `from_leaves` with 100k leaves.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn from_leaves_100k(bencher: Bencher) {
    let leaves: Vec<(B256, B256)> = (0..LEAVES).map(|i| (key(i), key(i + LEAVES))).collect();
    bencher
        .with_inputs(|| leaves.clone())
        .bench_local_values(SparseMerkleTree::from_leaves);
}
