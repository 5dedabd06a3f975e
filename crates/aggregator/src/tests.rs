#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use alloy_primitives::keccak256;
use proptest::prelude::*;

use super::*;

mod recursive;

/// Chain `chain`'s (stand-in) block hash at checkpoint `i`.
fn block(chain: u32, i: u64) -> B256 {
    keccak256([chain.to_be_bytes().as_slice(), &i.to_be_bytes()].concat())
}

fn genesis_blocks(chains: u32) -> Vec<B256> {
    (0..chains).map(|c| block(c, 0)).collect()
}

/// Imports a chain makes: `(ancestor level, age)`.
type Plan<'a> = &'a dyn Fn(ChainIndex) -> Vec<(u8, u8)>;

fn no_imports(_: ChainIndex) -> Vec<(u8, u8)> {
    Vec::new()
}

/// Every chain imports every ancestor's hash at `i-1`, and at `i-2` where it exists.
fn all_imports(state: &AggregatorState) -> impl Fn(ChainIndex) -> Vec<(u8, u8)> {
    let depth = state.shape().depth();
    let ages: Vec<u8> = if state.checkpoint() >= 1 {
        vec![1, 2]
    } else {
        vec![1]
    };
    move |_| {
        (1..=depth)
            .flat_map(|l| ages.iter().map(move |a| (l, *a)))
            .collect()
    }
}

/// The honest statements of checkpoint `state.checkpoint() + 1`, importing the genuine hashes.
fn honest_leaves(state: &AggregatorState, plan: Plan) -> Vec<LeafInput> {
    let shape = state.shape();
    let i = state.checkpoint() + 1;
    (0..shape.chains())
        .map(|c| LeafInput {
            chain: c,
            checkpoint: i,
            prev_block_hash: state.block_hash(c).unwrap(),
            block_hash: block(c, i),
            imports: plan(c)
                .into_iter()
                .map(|(level, age)| {
                    let node = shape.ancestor(c, level).unwrap();
                    let h = state.node_hashes(node).unwrap();
                    Import {
                        node,
                        checkpoint: i - u64::from(age),
                        hash: if age == 1 { h.hash } else { h.prev },
                    }
                })
                .collect(),
        })
        .collect()
}

/// Runs `checkpoints` honest checkpoints with `backend`, every root accepted by the settlement
/// layer's root chain; returns the final state and root chain.
fn run<P: TreeProver>(
    backend: &P,
    checkpoints: u64,
    imports: bool,
) -> (AggregatorState, RootChain, Vec<CheckpointProofs<P::Proof>>) {
    let shape = backend.shape();
    let hasher = backend.hasher();
    let mut state =
        AggregatorState::genesis(&hasher, shape, &genesis_blocks(shape.chains())).unwrap();
    let mut roots = RootChain::genesis(&hasher, shape, &genesis_blocks(shape.chains())).unwrap();
    assert_eq!(roots.root_hash(), state.root().hash);
    let mut all = Vec::new();
    for i in 1..=checkpoints {
        let plan = all_imports(&state);
        let leaves = if imports {
            honest_leaves(&state, &plan)
        } else {
            honest_leaves(&state, &no_imports)
        };
        let proofs = state.aggregate(backend, &leaves).unwrap();
        let accepted = roots.accept(backend, proofs.root_proof().unwrap()).unwrap();
        assert_eq!(accepted, proofs.root);
        assert_eq!(accepted.checkpoint, i);
        assert_eq!(roots.root_hash(), state.root().hash);
        assert_eq!(state.checkpoint(), i);
        all.push(proofs);
    }
    (state, roots, all)
}

#[test]
fn shape_levels() {
    let counts = |n: u32| {
        let s = TreeShape::new(n).unwrap();
        (0..=s.depth()).map(|l| s.nodes_at(l)).collect::<Vec<_>>()
    };
    assert_eq!(counts(1), vec![1, 1]);
    assert_eq!(counts(2), vec![2, 1]);
    assert_eq!(counts(3), vec![3, 2, 1]);
    assert_eq!(counts(5), vec![5, 3, 2, 1]);
    assert_eq!(counts(8), vec![8, 4, 2, 1]);
    assert_eq!(counts(100), vec![100, 50, 25, 13, 7, 4, 2, 1]);
    let s = TreeShape::new(5).unwrap();
    assert!(s.has_right(NodeId::new(1, 1)));
    assert!(!s.has_right(NodeId::new(1, 2)));
    assert!(!s.has_right(NodeId::new(2, 1)));
    assert!(s.has_right(NodeId::new(3, 0)));
    assert!(!TreeShape::new(1).unwrap().has_right(NodeId::new(1, 0)));
    assert_eq!(s.ancestor(4, 2), Some(NodeId::new(2, 1)));
    assert_eq!(s.ancestor(4, 4), None);
    assert_eq!(s.ancestor(5, 1), None);
    assert!(TreeShape::new(0).is_err());
    assert!(TreeShape::new(MAX_CHAINS + 1).is_err());
    assert_eq!(TreeShape::new(MAX_CHAINS).unwrap().depth(), 16);
    // decoding validates too
    let bytes = postcard::to_allocvec(&s).unwrap();
    assert_eq!(postcard::from_bytes::<TreeShape>(&bytes).unwrap(), s);
    let zero = postcard::to_allocvec(&0u32).unwrap();
    assert!(postcard::from_bytes::<TreeShape>(&zero).is_err());
}

#[test]
fn reexec_honest_aggregation() {
    for n in [1, 2, 3, 5, 8] {
        let backend = ReexecBackend::new(TreeShape::new(n).unwrap());
        let (state, _, proofs) = run(&backend, 4, true);
        // every intermediate proof verifies on its own and says what the state says
        for (row, level) in proofs.last().unwrap().levels.iter().zip(1u8..) {
            for (proof, index) in row.iter().zip(0u32..) {
                let s = backend.verify(proof).unwrap();
                let node = NodeId::new(level, index);
                assert_eq!(s.node, node);
                let h = state.node_hashes(node).unwrap();
                assert_eq!((s.prev_hash, s.hash), (h.prev, h.hash));
            }
        }
    }
}

#[test]
fn root_outputs_link_checkpoints() {
    let backend = ReexecBackend::new(TreeShape::new(5).unwrap());
    let (_, _, proofs) = run(&backend, 3, true);
    for w in proofs.windows(2) {
        assert_eq!(w[1].root.prev_hash, w[0].root.hash);
    }
    // the hashes change every checkpoint, so a replayed root is refused
    let shape = backend.shape();
    let mut roots = RootChain::genesis(&KeccakHasher, shape, &genesis_blocks(5)).unwrap();
    roots
        .accept(&backend, proofs[0].root_proof().unwrap())
        .unwrap();
    let again = roots.accept(&backend, proofs[0].root_proof().unwrap());
    assert!(matches!(again, Err(AggregatorError::RootRefused { .. })));
    assert!(matches!(
        roots.accept(&backend, &proofs[0].levels[0][0]),
        Err(AggregatorError::RootRefused { .. })
    ));
}

/// Proves one checkpoint by hand, replacing node `bad`'s `x` with garbage.
fn prove_with_wrong_x<P: TreeProver>(
    backend: &P,
    state: &AggregatorState,
    leaves: &[LeafInput],
    bad: NodeId,
    wrong: B256,
) -> Result<P::Proof, AggregatorError> {
    let shape = backend.shape();
    let mut below: Vec<P::Proof> = leaves
        .iter()
        .map(|l| backend.prove_leaf(l))
        .collect::<Result<_, _>>()?;
    for level in 1..=shape.depth() {
        let mut row = Vec::new();
        for (pair, index) in below.chunks(2).zip(0u32..) {
            let node = NodeId::new(level, index);
            let x = if node == bad {
                wrong
            } else {
                state.node_hashes(node).unwrap().prev
            };
            row.push(backend.prove_node(node, &pair[0], pair.get(1), x)?);
        }
        below = row;
    }
    Ok(below.remove(0))
}

#[test]
fn reexec_wrong_prev_hash_at_any_node_is_refused() {
    let shape = TreeShape::new(5).unwrap();
    let backend = ReexecBackend::new(shape);
    let (state, roots, _) = run(&backend, 2, false);
    let leaves = honest_leaves(&state, &no_imports);
    for node in shape.nodes() {
        let wrong = keccak256(b"not the node's hash at i-2");
        let root = prove_with_wrong_x(&backend, &state, &leaves, node, wrong).unwrap();
        // the proof is a valid proof of *a* tree, but not one linked to the accepted root
        let statement = backend.verify(&root).unwrap();
        assert_ne!(statement.prev_hash, roots.root_hash());
        let mut r = roots;
        assert!(
            matches!(
                r.accept(&backend, &root),
                Err(AggregatorError::RootRefused { .. })
            ),
            "wrong x at {node:?} accepted"
        );
        assert_eq!(r, roots, "a refused root changed the root chain");
    }
    // the honest tree is accepted
    let honest =
        prove_with_wrong_x(&backend, &state, &leaves, NodeId::new(9, 9), B256::ZERO).unwrap();
    roots.clone().accept(&backend, &honest).unwrap();

    // a wrong previous block hash: the aggregator refuses it, and a tree built on it anyway is
    // refused by the root chain
    for chain in 0..5 {
        let mut bad = leaves.clone();
        bad[chain].prev_block_hash = keccak256(b"fork");
        let mut s = state.clone();
        assert!(matches!(
            s.aggregate(&backend, &bad),
            Err(AggregatorError::WrongPrevBlockHash { .. })
        ));
        assert_eq!(s, state);
        let root =
            prove_with_wrong_x(&backend, &state, &bad, NodeId::new(9, 9), B256::ZERO).unwrap();
        assert!(matches!(
            roots.clone().accept(&backend, &root),
            Err(AggregatorError::RootRefused { .. })
        ));
    }
}

#[test]
fn reexec_forged_import_is_rejected_by_the_settling_node() {
    let shape = TreeShape::new(8).unwrap();
    let backend = ReexecBackend::new(shape);
    let (state, _, _) = run(&backend, 2, true);
    for age in [1u8, 2] {
        for level in 1..=shape.depth() {
            let chain = 5;
            let mut leaves = honest_leaves(&state, &no_imports);
            let target = shape.ancestor(chain, level).unwrap();
            leaves[chain as usize].imports.push(Import {
                node: target,
                checkpoint: 3 - u64::from(age),
                hash: keccak256(b"forged"),
            });
            // the leaf cannot tell; every node below the target passes the export up; the
            // target refuses
            let forged = Export {
                level,
                age,
                hash: keccak256(b"forged"),
            };
            let mut below = leaves
                .iter()
                .map(|l| backend.prove_leaf(l).unwrap())
                .collect::<Vec<_>>();
            for l in 1..=level {
                let mut row = Vec::new();
                for (pair, index) in below.chunks(2).zip(0u32..) {
                    let node = NodeId::new(l, index);
                    let x = state.node_hashes(node).unwrap().prev;
                    let r = backend.prove_node(node, &pair[0], pair.get(1), x);
                    if node == target {
                        assert!(
                            matches!(r, Err(AggregatorError::ImportMismatch { level: lv, index: ix, .. })
                                if lv == level && ix == target.index),
                            "{r:?}"
                        );
                    } else {
                        let proof = r.unwrap();
                        let exports = backend.verify(&proof).unwrap().exports;
                        assert_eq!(
                            exports.contains(&forged),
                            shape.ancestor(chain, l) == Some(node),
                            "the forged export travels exactly along the chain's path"
                        );
                        row.push(proof);
                    }
                }
                below = row;
            }
            let mut s = state.clone();
            assert!(matches!(
                s.aggregate(&backend, &leaves),
                Err(AggregatorError::ImportMismatch { .. })
            ));
            assert_eq!(s, state, "a refused checkpoint changed the state");
        }
    }
}

#[test]
fn imports_of_non_ancestors_and_outside_the_window_are_refused() {
    let shape = TreeShape::new(5).unwrap();
    let backend = ReexecBackend::new(shape);
    let (state, _, _) = run(&backend, 2, false);
    let leaves = honest_leaves(&state, &no_imports);
    let import = |node: NodeId, checkpoint: u64| {
        let mut l = leaves.clone();
        l[0].imports.push(Import {
            node,
            checkpoint,
            hash: state.node_hashes(node).map_or(B256::ZERO, |h| h.hash),
        });
        l
    };
    // (1, 1) is the sibling subtree's node, (2, 1) the other half; (0, 0) is the chain itself
    for node in [
        NodeId::new(1, 1),
        NodeId::new(2, 1),
        NodeId::new(0, 0),
        NodeId::new(4, 0),
    ] {
        let bad = import(node, 2);
        assert!(matches!(
            backend.prove_leaf(&bad[0]),
            Err(AggregatorError::NotAnAncestor { chain: 0, .. })
        ));
        let mut s = state.clone();
        assert!(matches!(
            s.aggregate(&backend, &bad),
            Err(AggregatorError::NotAnAncestor { .. })
        ));
        assert_eq!(s, state);
    }
    // checkpoint i (circular), i-3 (too old), i+1
    for checkpoint in [3, 0, 4] {
        let bad = import(NodeId::new(1, 0), checkpoint);
        assert!(matches!(
            backend.prove_leaf(&bad[0]),
            Err(AggregatorError::ImportOutOfWindow { .. })
        ));
    }
    // the genuine ancestor hash at i-1 is fine
    let good = import(NodeId::new(2, 0), 2);
    state.clone().aggregate(&backend, &good).unwrap();
    // two different claims for the same node and checkpoint
    let mut conflicting = good.clone();
    conflicting[1].imports.push(Import {
        node: NodeId::new(2, 0),
        checkpoint: 2,
        hash: keccak256(b"other"),
    });
    assert!(matches!(
        state.clone().aggregate(&backend, &conflicting),
        Err(AggregatorError::ConflictingExports { .. })
    ));
}

#[test]
fn exports_per_proof_for_100_chains() {
    let shape = TreeShape::new(100).unwrap();
    let state = AggregatorState::genesis(&KeccakHasher, shape, &genesis_blocks(100)).unwrap();
    // checkpoint 1: every chain imports every ancestor (one age)
    let one_age = honest_leaves(&state, &all_imports(&state));
    let stats = export_stats(&shape, &one_age).unwrap();
    println!("| level | proofs | max exported hashes / proof (one age) | total |");
    println!("|---|---|---|---|");
    for s in &stats {
        println!("| {} | {} | {} | {} |", s.level, s.proofs, s.max, s.total);
    }
    assert_eq!(shape.depth(), 7);
    for s in &stats {
        assert_eq!(s.max, usize::from(shape.depth() - s.level), "{s:?}");
    }
    assert_eq!(stats[0].max, 7);
    assert_eq!(stats.last().unwrap().max, 0);
    // both ages (checkpoint >= 2): at most twice that
    let backend = ReexecBackend::new(shape);
    let (state, _, _) = run(&backend, 1, false);
    let both = honest_leaves(&state, &all_imports(&state));
    let stats2 = export_stats(&shape, &both).unwrap();
    println!("| level | max exported hashes / proof (both ages) |");
    for s in &stats2 {
        println!("| {} | {} |", s.level, s.max);
        assert_eq!(s.max, 2 * usize::from(shape.depth() - s.level));
    }
    // and the real tree settles them all
    state.clone().aggregate(&backend, &both).unwrap();
    // a single chain importing one hash exports it up to (not beyond) its ancestor
    let mut leaves = honest_leaves(&state, &no_imports);
    leaves[37].imports = honest_leaves(&state, &|c| if c == 37 { vec![(3, 1)] } else { vec![] })
        [37]
    .imports
    .clone();
    let stats3 = export_stats(&shape, &leaves).unwrap();
    let maxes: Vec<usize> = stats3.iter().map(|s| s.max).collect();
    assert_eq!(maxes, vec![1, 1, 1, 0, 0, 0, 0, 0]);
}

#[test]
fn resume_from_last_root_matches_uninterrupted() {
    let shape = TreeShape::new(7).unwrap();
    let backend = ReexecBackend::new(shape);
    let mut uninterrupted =
        AggregatorState::genesis(&KeccakHasher, shape, &genesis_blocks(7)).unwrap();
    let mut roots = RootChain::genesis(&KeccakHasher, shape, &genesis_blocks(7)).unwrap();
    let mut last_root_proof = None;
    for _ in 0..3 {
        let leaves = honest_leaves(&uninterrupted, &all_imports(&uninterrupted));
        let p = uninterrupted.aggregate(&backend, &leaves).unwrap();
        roots.accept(&backend, p.root_proof().unwrap()).unwrap();
        last_root_proof = p.root_proof().cloned();
    }
    // the old aggregator disappears; a new one rebuilds its state from the last root's data
    let snapshot = backend.snapshot(last_root_proof.as_ref().unwrap()).unwrap();
    assert_eq!(&snapshot, uninterrupted.snapshot());
    let mut resumed = AggregatorState::resume(&KeccakHasher, &roots, snapshot.clone()).unwrap();
    assert_eq!(resumed, uninterrupted);
    let mut roots2 = roots;
    for _ in 0..3 {
        let leaves = honest_leaves(&uninterrupted, &all_imports(&uninterrupted));
        let a = uninterrupted.aggregate(&backend, &leaves).unwrap();
        let b = resumed.aggregate(&backend, &leaves).unwrap();
        assert_eq!(a.root, b.root);
        roots.accept(&backend, a.root_proof().unwrap()).unwrap();
        roots2.accept(&backend, b.root_proof().unwrap()).unwrap();
        assert_eq!(uninterrupted.snapshot(), resumed.snapshot());
    }
    assert_eq!(roots, roots2);

    // a snapshot that does not recompute, or does not end in the accepted root, is refused
    let mut rc = RootChain::genesis(&KeccakHasher, shape, &genesis_blocks(7)).unwrap();
    let mut st = AggregatorState::genesis(&KeccakHasher, shape, &genesis_blocks(7)).unwrap();
    for _ in 0..3 {
        let p = st
            .aggregate(&backend, &honest_leaves(&st, &no_imports))
            .unwrap();
        rc.accept(&backend, p.root_proof().unwrap()).unwrap();
    }
    let good = st.snapshot().clone();
    AggregatorState::resume(&KeccakHasher, &rc, good.clone()).unwrap();
    let mut bad = good.clone();
    bad.nodes[0][1].prev = keccak256(b"x");
    assert!(AggregatorState::resume(&KeccakHasher, &rc, bad).is_err());
    let mut bad = good.clone();
    bad.block_hashes[6] = keccak256(b"x");
    assert!(AggregatorState::resume(&KeccakHasher, &rc, bad).is_err());
    let mut bad = good.clone();
    bad.checkpoint = 2;
    assert!(AggregatorState::resume(&KeccakHasher, &rc, bad).is_err());
    // (imports do not enter the hashes: the tree with imports has the same snapshot)
    assert_eq!(&snapshot, st.snapshot());
    // a consistent snapshot of another tree (another fork of chain 3) is refused
    let mut other = AggregatorState::genesis(&KeccakHasher, shape, &genesis_blocks(7)).unwrap();
    for _ in 0..3 {
        let mut leaves = honest_leaves(&other, &no_imports);
        leaves[3].block_hash = keccak256(leaves[3].block_hash);
        other.aggregate(&backend, &leaves).unwrap();
    }
    assert!(matches!(
        AggregatorState::resume(&KeccakHasher, &rc, other.snapshot().clone()),
        Err(AggregatorError::SnapshotRefused { .. })
    ));
}

#[test]
fn emergency_exit_from_the_last_root() {
    let shape = TreeShape::new(5).unwrap();
    let backend = ReexecBackend::new(shape);
    let (state, roots, _) = run(&backend, 3, true);
    for chain in 0..5u32 {
        let path = state.leaf_path(chain).unwrap();
        // alone, with no statement: the chain's block hash at the last root
        let out = verify_exit(&KeccakHasher, &roots, &path, &[]).unwrap();
        assert_eq!(out.block_hash, block(chain, 3));
        // two more checkpoints of its own, importing what the last root settles
        let mut statements = Vec::new();
        let mut prev = block(chain, 3);
        for i in 4..=5u64 {
            let root = shape.root();
            let imports = if i == 4 {
                vec![
                    Import {
                        node: root,
                        checkpoint: 3,
                        hash: state.root().hash,
                    },
                    Import {
                        node: shape.ancestor(chain, 1).unwrap(),
                        checkpoint: 2,
                        hash: state
                            .node_hashes(shape.ancestor(chain, 1).unwrap())
                            .unwrap()
                            .prev,
                    },
                ]
            } else {
                vec![Import {
                    node: root,
                    checkpoint: 3,
                    hash: state.root().hash,
                }]
            };
            statements.push(LeafInput {
                chain,
                checkpoint: i,
                prev_block_hash: prev,
                block_hash: block(chain, i),
                imports,
            });
            prev = block(chain, i);
        }
        let out = verify_exit(&KeccakHasher, &roots, &path, &statements).unwrap();
        assert_eq!(
            out,
            ExitOutcome {
                chain,
                checkpoint: 5,
                block_hash: block(chain, 5)
            }
        );
        // a wrong imported hash, a gap, a foreign path are refused
        let mut bad = statements.clone();
        bad[1].imports[0].hash = keccak256(b"forged");
        assert!(verify_exit(&KeccakHasher, &roots, &path, &bad).is_err());
        let mut bad = statements.clone();
        bad[1].prev_block_hash = keccak256(b"gap");
        assert!(verify_exit(&KeccakHasher, &roots, &path, &bad).is_err());
        let mut bad_path = path.clone();
        bad_path.block_hash = keccak256(b"other");
        assert!(verify_exit(&KeccakHasher, &roots, &bad_path, &[]).is_err());
        for level in 0..path.steps.len() {
            let mut bad_path = path.clone();
            bad_path.steps[level].prev = keccak256(b"other");
            assert!(verify_exit(&KeccakHasher, &roots, &bad_path, &[]).is_err());
        }
        // an import of a checkpoint the stalled tree never settled (4) is refused
        let mut bad = statements.clone();
        bad[1].imports[0].checkpoint = 4;
        assert!(verify_exit(&KeccakHasher, &roots, &path, &bad).is_err());
    }
}

// ---- property tests: valid trees verify, any tampering fails ----

/// Imports drawn from `mask` (one bit per (level, age)).
fn masked_plan(state: &AggregatorState, masks: Vec<u32>) -> impl Fn(ChainIndex) -> Vec<(u8, u8)> {
    let depth = state.shape().depth();
    let max_age = if state.checkpoint() >= 1 { 2 } else { 1 };
    move |c| {
        let m = masks[c as usize % masks.len()];
        (1..=depth)
            .flat_map(|l| (1..=max_age).map(move |a| (l, a)))
            .enumerate()
            .filter(|(bit, _)| m >> (bit % 32) & 1 == 1)
            .map(|(_, la)| la)
            .collect()
    }
}

/// One way to tamper with a re-execution proof.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    /// A leaf's previous block hash (the chain forked).
    PrevBlockHash,
    /// A leaf's current block hash (a different claim).
    BlockHash,
    /// An imported hash.
    ImportHash,
    /// An imported checkpoint (age 1 <-> 2).
    ImportAge,
    /// A node's hash two checkpoints back.
    PrevPrev,
    /// Swapping a node's children.
    SwapChildren,
    /// Dropping a node's right child.
    DropRight,
    /// A leaf's chain index.
    ChainIndex,
}

/// Applies `tamper` at the `site`-th applicable place (pre-order); `None` if no such place.
fn tamper(proof: &ReexecProof, t: Tamper, site: &mut usize) -> Option<ReexecProof> {
    match proof {
        ReexecProof::Leaf(leaf) => {
            let applicable = match t {
                Tamper::ImportHash | Tamper::ImportAge => !leaf.imports.is_empty(),
                Tamper::PrevBlockHash | Tamper::BlockHash | Tamper::ChainIndex => true,
                _ => false,
            };
            if !applicable {
                return None;
            }
            if *site > 0 {
                *site -= 1;
                return None;
            }
            let mut leaf = leaf.clone();
            match t {
                Tamper::PrevBlockHash => leaf.prev_block_hash.0[0] ^= 1,
                Tamper::BlockHash => leaf.block_hash.0[0] ^= 1,
                Tamper::ImportHash => leaf.imports[0].hash.0[31] ^= 1,
                Tamper::ImportAge => {
                    let c = &mut leaf.imports[0].checkpoint;
                    *c = if *c + 1 == leaf.checkpoint {
                        c.wrapping_sub(1)
                    } else {
                        *c + 1
                    };
                }
                Tamper::ChainIndex => leaf.chain ^= 1,
                _ => {}
            }
            Some(ReexecProof::Leaf(leaf))
        }
        ReexecProof::Node {
            node,
            prev_prev_hash,
            left,
            right,
        } => {
            let applicable = match t {
                Tamper::PrevPrev => true,
                Tamper::SwapChildren | Tamper::DropRight => right.is_some(),
                _ => false,
            };
            if applicable {
                if *site == 0 {
                    let (mut x, mut l, mut r) = (*prev_prev_hash, left.clone(), right.clone());
                    match t {
                        Tamper::PrevPrev => x.0[5] ^= 1,
                        Tamper::SwapChildren => {
                            let rr = r.clone().unwrap();
                            r = Some(l);
                            l = rr;
                        }
                        Tamper::DropRight => r = None,
                        _ => {}
                    }
                    return Some(ReexecProof::Node {
                        node: *node,
                        prev_prev_hash: x,
                        left: l,
                        right: r,
                    });
                }
                *site -= 1;
            }
            if let Some(l) = tamper(left, t, site) {
                return Some(ReexecProof::Node {
                    node: *node,
                    prev_prev_hash: *prev_prev_hash,
                    left: Arc::new(l),
                    right: right.clone(),
                });
            }
            let r = tamper(right.as_deref()?, t, site)?;
            Some(ReexecProof::Node {
                node: *node,
                prev_prev_hash: *prev_prev_hash,
                left: left.clone(),
                right: Some(Arc::new(r)),
            })
        }
    }
}

fn any_tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        Just(Tamper::PrevBlockHash),
        Just(Tamper::BlockHash),
        Just(Tamper::ImportHash),
        Just(Tamper::ImportAge),
        Just(Tamper::PrevPrev),
        Just(Tamper::SwapChildren),
        Just(Tamper::DropRight),
        Just(Tamper::ChainIndex),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Honest trees with random imports verify and are accepted; tampering with any part of
    /// the root proof makes it refused, or (for a changed current block hash, which is a
    /// different but well-formed claim) makes it prove a different root.
    #[test]
    fn reexec_valid_trees_verify_and_tampering_fails(
        n in 1u32..=12,
        checkpoints in 1u64..=3,
        masks in prop::collection::vec(any::<u32>(), 1..6),
        t in any_tamper(),
        site in 0usize..64,
    ) {
        let shape = TreeShape::new(n).unwrap();
        let backend = ReexecBackend::new(shape);
        let mut state = AggregatorState::genesis(&KeccakHasher, shape, &genesis_blocks(n)).unwrap();
        let mut roots = RootChain::genesis(&KeccakHasher, shape, &genesis_blocks(n)).unwrap();
        let mut last = None;
        for _ in 0..checkpoints {
            let before = roots;
            let leaves = honest_leaves(&state, &masked_plan(&state, masks.clone()));
            let proofs = state.aggregate(&backend, &leaves).unwrap();
            let root = proofs.root_proof().unwrap().clone();
            let statement = roots.accept(&backend, &root).unwrap();
            prop_assert_eq!(&statement, &proofs.root);
            prop_assert!(statement.exports.is_empty());
            last = Some((before, root, statement));
        }
        let (before, root, honest) = last.unwrap();
        let mut sites = site;
        // count the applicable places, then pick one
        let mut count = 0usize;
        loop {
            let mut s = count;
            if tamper(&root, t, &mut s).is_none() { break; }
            count += 1;
        }
        prop_assume!(count > 0);
        sites %= count;
        let tampered = Arc::new(tamper(&root, t, &mut sites).unwrap());
        let mut r = before;
        match r.accept(&backend, &tampered) {
            Err(_) => prop_assert_eq!(r, before),
            Ok(s) => {
                prop_assert!(matches!(t, Tamper::BlockHash), "{:?} accepted", t);
                prop_assert_ne!(s.hash, honest.hash);
                prop_assert_eq!(s.prev_hash, honest.prev_hash);
            }
        }
    }

    /// The wire size of a re-execution proof grows with the subtree, and the proof survives
    /// encoding.
    #[test]
    fn reexec_proof_roundtrips(n in 1u32..=9) {
        let backend = ReexecBackend::new(TreeShape::new(n).unwrap());
        let (_, _, proofs) = run(&backend, 1, true);
        let root = proofs[0].root_proof().unwrap();
        let bytes = postcard::to_allocvec(root.as_ref()).unwrap();
        prop_assert_eq!(bytes.len(), backend.proof_size_bytes(root));
        let back: ReexecProof = postcard::from_bytes(&bytes).unwrap();
        prop_assert_eq!(backend.verify(&Arc::new(back)).unwrap(), proofs[0].root.clone());
    }
}
