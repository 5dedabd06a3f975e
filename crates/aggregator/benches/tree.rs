//! The aggregation tree with both backends over 2, 16 and 128 chains: prove time per level,
//! proof size per level, and the settlement layer's root verification.
//! Run with `cargo bench -p braid-aggregator --bench tree`.
//!
//! Before divan runs, every fixture is built by proving one whole checkpoint (checkpoint 1, every
//! chain importing every ancestor's hash at checkpoint 0), level by level, one proof after the
//! other; the wall time of each whole level and the largest proof of each level are printed as a
//! markdown table. Divan then measures, per level, proving one node (index 0) from the fixture's
//! child proofs, and verifying the root proof.
//!
//! `BRAID_AGG_BENCH_PLONKY2_MAX_CHAINS` (default 128) limits the tree sizes proven with plonky2
//! (the 128-chain tree is 127 node proofs, about 1.5 minutes on two cores).

#![allow(clippy::unwrap_used)]

use std::fmt;
use std::sync::OnceLock;
use std::time::Instant;

use braid_aggregator::{
    AggregatorState, Import, LeafInput, NodeId, RecursiveBackend, ReexecBackend, TreeProver,
    TreeShape, TreeVerifier, B256,
};
use divan::{black_box, Bencher};

const SIZES: [u32; 3] = [2, 16, 128];

fn plonky2_max_chains() -> u32 {
    std::env::var("BRAID_AGG_BENCH_PLONKY2_MAX_CHAINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

struct Fixture<P: TreeProver> {
    backend: P,
    state: AggregatorState,
    /// `levels[0]`: leaf proofs; `levels[l]`: proofs of level `l`.
    levels: Vec<Vec<P::Proof>>,
    /// Wall time of proving each whole level, seconds.
    level_secs: Vec<f64>,
    build_secs: f64,
}

/// A stand-in block hash of chain `chain` at checkpoint `i` (any 32 bytes do).
fn block(chain: u32, i: u64) -> B256 {
    let mut out = [0u8; 32];
    out[..4].copy_from_slice(&chain.to_be_bytes());
    out[4..12].copy_from_slice(&i.to_be_bytes());
    out[31] = 1;
    B256::from(out)
}

fn build<P: TreeProver>(backend: P, build_secs: f64) -> Fixture<P> {
    let shape = backend.shape();
    let hasher = backend.hasher();
    let genesis: Vec<B256> = (0..shape.chains()).map(|c| block(c, 0)).collect();
    let state = AggregatorState::genesis(&hasher, shape, &genesis).unwrap();
    let leaves: Vec<LeafInput> = (0..shape.chains())
        .map(|c| LeafInput {
            chain: c,
            checkpoint: 1,
            prev_block_hash: block(c, 0),
            block_hash: block(c, 1),
            imports: (1..=shape.depth())
                .map(|l| {
                    let node = shape.ancestor(c, l).unwrap();
                    Import {
                        node,
                        checkpoint: 0,
                        hash: state.node_hashes(node).unwrap().hash,
                    }
                })
                .collect(),
        })
        .collect();
    let t = Instant::now();
    let mut levels = vec![leaves
        .iter()
        .map(|l| backend.prove_leaf(l).unwrap())
        .collect::<Vec<_>>()];
    let mut level_secs = vec![t.elapsed().as_secs_f64()];
    for level in 1..=shape.depth() {
        let t = Instant::now();
        let row = levels
            .last()
            .unwrap()
            .chunks(2)
            .zip(0u32..)
            .map(|(pair, index)| {
                let node = NodeId::new(level, index);
                let x = state.node_hashes(node).unwrap().prev;
                backend.prove_node(node, &pair[0], pair.get(1), x).unwrap()
            })
            .collect();
        level_secs.push(t.elapsed().as_secs_f64());
        levels.push(row);
    }
    Fixture {
        backend,
        state,
        levels,
        level_secs,
        build_secs,
    }
}

fn slot(n: u32) -> usize {
    SIZES.iter().position(|&s| s == n).unwrap()
}

fn reexec(n: u32) -> &'static Fixture<ReexecBackend> {
    static F: [OnceLock<Fixture<ReexecBackend>>; 3] = [const { OnceLock::new() }; 3];
    F[slot(n)].get_or_init(|| build(ReexecBackend::new(TreeShape::new(n).unwrap()), 0.0))
}

fn plonky2(n: u32) -> &'static Fixture<RecursiveBackend> {
    static F: [OnceLock<Fixture<RecursiveBackend>>; 3] = [const { OnceLock::new() }; 3];
    F[slot(n)].get_or_init(|| {
        let t = Instant::now();
        let backend = RecursiveBackend::new(TreeShape::new(n).unwrap());
        let secs = t.elapsed().as_secs_f64();
        build(backend, secs)
    })
}

fn table<P: TreeProver>(name: &str, f: &Fixture<P>) {
    let shape = f.backend.shape();
    let root = &f.levels.last().unwrap()[0];
    let t = Instant::now();
    let statement = f.backend.verify(root).unwrap();
    let verify = t.elapsed();
    // the root links to the genesis root the settlement layer starts from
    assert_eq!(statement.prev_hash, f.state.root().hash);
    for (level, (row, secs)) in f.levels.iter().zip(&f.level_secs).enumerate() {
        let size = row
            .iter()
            .map(|p| f.backend.proof_size_bytes(p))
            .max()
            .unwrap_or(0);
        println!(
            "| {name} | {} | {level} | {} | {:.3} | {:.3} | {} |",
            shape.chains(),
            row.len(),
            secs * 1e3,
            secs * 1e3 / row.len() as f64,
            size,
        );
    }
    println!(
        "| {name} | {} | root verify (once, cold) | | {:.3} | | circuits built in {:.1} s |",
        shape.chains(),
        verify.as_secs_f64() * 1e3,
        f.build_secs
    );
}

fn main() {
    println!("| backend | chains | level | proofs | whole level (ms) | per proof (ms) | largest proof (bytes) |");
    println!("|---|---|---|---|---|---|---|");
    for n in SIZES {
        table("re-execution", reexec(n));
    }
    for n in SIZES.into_iter().filter(|n| *n <= plonky2_max_chains()) {
        table("plonky2", plonky2(n));
    }
    divan::main();
}

/// A (tree size, level) pair to bench.
#[derive(Debug, Clone, Copy)]
struct Case {
    chains: u32,
    level: u8,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}_l{}", self.chains, self.level)
    }
}

fn cases(max: u32) -> Vec<Case> {
    SIZES
        .into_iter()
        .filter(|n| *n <= max)
        .flat_map(|chains| {
            let depth = TreeShape::new(chains).unwrap().depth();
            (0..=depth).map(move |level| Case { chains, level })
        })
        .collect()
}

fn prove_one<P: TreeProver>(f: &Fixture<P>, level: u8) -> P::Proof {
    let b = &f.backend;
    if level == 0 {
        // chain 0's statement, as in the fixture
        let shape = b.shape();
        let leaf = LeafInput {
            chain: 0,
            checkpoint: 1,
            prev_block_hash: block(0, 0),
            block_hash: block(0, 1),
            imports: (1..=shape.depth())
                .map(|l| {
                    let node = shape.ancestor(0, l).unwrap();
                    Import {
                        node,
                        checkpoint: 0,
                        hash: f.state.node_hashes(node).unwrap().hash,
                    }
                })
                .collect(),
        };
        return b.prove_leaf(&leaf).unwrap();
    }
    let children = &f.levels[usize::from(level) - 1];
    let node = NodeId::new(level, 0);
    let x = f.state.node_hashes(node).unwrap().prev;
    b.prove_node(node, &children[0], children.get(1), x)
        .unwrap()
}

/// Re-execution: proving node 0 of a level (re-verifies its whole subtree).
#[divan::bench(args = cases(u32::MAX), sample_count = 20, sample_size = 1)]
fn reexec_prove_node(bencher: Bencher, case: Case) {
    let f = reexec(case.chains);
    bencher.bench_local(|| prove_one(f, black_box(case.level)));
}

/// Re-execution: the settlement layer verifying the root (recomputes the whole tree).
#[divan::bench(args = SIZES, sample_count = 20, sample_size = 1)]
fn reexec_verify_root(bencher: Bencher, n: u32) {
    let f = reexec(n);
    let root = &f.levels.last().unwrap()[0];
    bencher.bench_local(|| f.backend.verify(black_box(root)).unwrap());
}

/// plonky2: proving node 0 of a level (level 0: one leaf).
#[divan::bench(args = cases(plonky2_max_chains()), sample_count = 3, sample_size = 1)]
fn plonky2_prove_node(bencher: Bencher, case: Case) {
    let f = plonky2(case.chains);
    bencher.bench_local(|| prove_one(f, black_box(case.level)));
}

/// plonky2: the settlement layer verifying the root proof (one verification for all chains).
#[divan::bench(args = SIZES.into_iter().filter(|n| *n <= plonky2_max_chains()), sample_count = 50, sample_size = 1)]
fn plonky2_verify_root(bencher: Bencher, n: u32) {
    let f = plonky2(n);
    let root = &f.levels.last().unwrap()[0];
    bencher.bench_local(|| f.backend.verify(black_box(root)).unwrap());
}
