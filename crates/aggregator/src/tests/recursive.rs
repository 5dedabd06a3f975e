//! plonky2 backend tests. A node proof takes about a second here, so the trees are small and each
//! shape's circuits are built once.

use std::sync::OnceLock;

use super::*;

fn backend(n: u32) -> &'static RecursiveBackend {
    static B: [OnceLock<RecursiveBackend>; 9] = [const { OnceLock::new() }; 9];
    B[n as usize].get_or_init(|| RecursiveBackend::new(TreeShape::new(n).unwrap()))
}

#[test]
fn recursive_honest_aggregation_n1_n2() {
    for n in [1, 2] {
        let b = backend(n);
        let (state, roots, proofs) = run(b, 1, true);
        let root = proofs[0].root_proof().unwrap();
        assert_eq!(b.verify(root).unwrap().hash, roots.root_hash());
        assert_eq!(state.root().hash, roots.root_hash());
        // Poseidon, not keccak: the re-execution tree has other hashes
        let (_, keccak_roots, _) = run(&ReexecBackend::new(b.shape()), 1, true);
        assert_ne!(keccak_roots.root_hash(), roots.root_hash());
    }
}

/// One honest checkpoint on `n` chains: every intermediate proof verifies alone and agrees with
/// the reference statements, every chain's exports reach its ancestors.
fn honest_deep_tree(n: u32) {
    let b = backend(n);
    let (state, _, proofs) = run(b, 1, true);
    for (row, level) in proofs[0].levels.iter().zip(1u8..) {
        for (proof, index) in row.iter().zip(0u32..) {
            let s = b.verify(proof).unwrap();
            let h = state.node_hashes(NodeId::new(level, index)).unwrap();
            assert_eq!(
                (s.node, s.prev_hash, s.hash),
                (NodeId::new(level, index), h.prev, h.hash)
            );
            // what is left to export: the levels above
            assert_eq!(s.exports.len(), usize::from(b.shape().depth() - level));
        }
    }
    for (leaf, chain) in proofs[0].leaves.iter().zip(0u32..) {
        let s = b.verify(leaf).unwrap();
        assert_eq!(s.hash, PoseidonHasher.leaf_hash(chain, block(chain, 1)));
        // every chain imported each ancestor at checkpoint 0
        assert_eq!(s.exports.len(), usize::from(b.shape().depth()));
    }
}

#[test]
fn recursive_honest_aggregation_n5() {
    honest_deep_tree(5);
}

/// Three chains: checkpoint 1 through the aggregator, checkpoint 2 (age-2 imports, non-zero `x`)
/// by hand, then the failure cases at checkpoint 2: a wrong `x`, forged imports, a child in the
/// wrong place, a non-ancestor, corrupted proof bytes.
#[test]
fn recursive_n3_linkage_forgery_and_encoding() {
    let b = backend(3);
    let root_id = b.shape().root();
    assert_eq!(b.degree_bits().len(), 3);
    let (state, roots, _) = run(b, 1, true);
    let x = |node: NodeId| state.node_hashes(node).unwrap().prev;
    assert_ne!(x(root_id), B256::ZERO);

    // honest checkpoint 2, every chain importing its level-1 ancestor at checkpoints 1 and 0
    // (checkpoint 1 imported every ancestor, the root included)
    let level1 = |_| vec![(1, 1), (1, 2)];
    let leaves = honest_leaves(&state, &level1);
    assert!(leaves
        .iter()
        .all(|l| l.imports.iter().any(|i| i.checkpoint == 0)));
    let leaf_proofs: Vec<_> = leaves.iter().map(|l| b.prove_leaf(l).unwrap()).collect();
    let n10 = b
        .prove_node(
            NodeId::new(1, 0),
            &leaf_proofs[0],
            Some(&leaf_proofs[1]),
            x(NodeId::new(1, 0)),
        )
        .unwrap();
    let n11 = b
        .prove_node(
            NodeId::new(1, 1),
            &leaf_proofs[2],
            None,
            x(NodeId::new(1, 1)),
        )
        .unwrap();
    let root = b.prove_node(root_id, &n10, Some(&n11), x(root_id)).unwrap();
    let mut r = roots;
    let accepted = r.accept(b, &root).unwrap();
    assert_eq!(accepted.checkpoint, 2);
    assert!(accepted.exports.is_empty());

    // encoding: round trip, and a corrupted byte is refused
    let bytes = root.to_bytes();
    assert_eq!(bytes.len(), b.proof_size_bytes(&root));
    assert_eq!(b.decode_proof(root.level(), &bytes).unwrap(), root);
    let mut corrupted = bytes.clone();
    corrupted[bytes.len() / 2] ^= 1;
    assert!(b.decode_proof(root.level(), &corrupted).is_err());
    assert!(
        b.decode_proof(1, &bytes).is_err(),
        "a root proof is not a level-1 proof"
    );

    // a wrong x at node (1, 1): the tree proves, the settlement layer refuses it
    let wrong_x = PoseidonHasher.leaf_hash(9, B256::ZERO);
    // (chain 2 imported (1, 1)'s hash at i-2, so with its import the wrong x is not even provable)
    assert!(matches!(
        b.prove_node(NodeId::new(1, 1), &leaf_proofs[2], None, wrong_x),
        Err(AggregatorError::Recursive { .. })
    ));
    let plain2 = b
        .prove_leaf(&LeafInput {
            imports: Vec::new(),
            ..leaves[2].clone()
        })
        .unwrap();
    let n11_bad = b
        .prove_node(NodeId::new(1, 1), &plain2, None, wrong_x)
        .unwrap();
    let root_bad = b
        .prove_node(root_id, &n10, Some(&n11_bad), x(root_id))
        .unwrap();
    let mut r = roots;
    assert!(matches!(
        r.accept(b, &root_bad),
        Err(AggregatorError::RootRefused { .. })
    ));
    assert_eq!(r, roots);
    // children in the wrong places are refused by the circuit
    assert!(b.prove_node(root_id, &n11, Some(&n10), x(root_id)).is_err());

    // forged import: chain 2 claims the root's hash at i-1 is something else. The leaf and the
    // one-child node (1, 1) prove (the export rides up); the root's circuit is unsatisfiable.
    let mut forged = leaves[2].clone();
    forged.imports.push(Import {
        node: root_id,
        checkpoint: 1,
        hash: wrong_x,
    });
    let forged_leaf = b.prove_leaf(&forged).unwrap();
    let n11_forged = b
        .prove_node(NodeId::new(1, 1), &forged_leaf, None, x(NodeId::new(1, 1)))
        .unwrap();
    assert!(b.verify(&n11_forged).unwrap().exports.contains(&Export {
        level: 2,
        age: 1,
        hash: wrong_x
    }));
    let refused = b.prove_node(root_id, &n10, Some(&n11_forged), x(root_id));
    assert!(
        matches!(refused, Err(AggregatorError::Recursive { .. })),
        "{refused:?}"
    );
    // the aggregator refuses it before proving, with the reference error
    assert!(matches!(
        state
            .clone()
            .aggregate(b, &[leaves[0].clone(), leaves[1].clone(), forged]),
        Err(AggregatorError::ImportMismatch { level: 2, .. })
    ));
    // an age-2 forgery at level 1: the genuine hash at i-1 passed off as the one at i-2
    let mut forged0 = leaves[0].clone();
    forged0
        .imports
        .retain(|i| i.node.level != 1 || i.checkpoint != 0);
    forged0.imports.push(Import {
        node: NodeId::new(1, 0),
        checkpoint: 0,
        hash: state.node_hashes(NodeId::new(1, 0)).unwrap().hash,
    });
    let forged0 = b.prove_leaf(&forged0).unwrap();
    assert!(matches!(
        b.prove_node(
            NodeId::new(1, 0),
            &forged0,
            Some(&leaf_proofs[1]),
            x(NodeId::new(1, 0))
        ),
        Err(AggregatorError::Recursive { .. })
    ));

    // non-ancestors and non-digests never reach a circuit
    let mut foreign = leaves[2].clone();
    foreign.imports.push(Import {
        node: NodeId::new(1, 0),
        checkpoint: 1,
        hash: state.node_hashes(NodeId::new(1, 0)).unwrap().hash,
    });
    assert!(matches!(
        b.prove_leaf(&foreign),
        Err(AggregatorError::NotAnAncestor {
            chain: 2,
            level: 1,
            index: 0
        })
    ));
    let mut not_digest = leaves[2].clone();
    not_digest.imports.push(Import {
        node: root_id,
        checkpoint: 1,
        hash: B256::repeat_byte(0xff),
    });
    assert!(matches!(
        b.prove_leaf(&not_digest),
        Err(AggregatorError::NonCanonicalDigest(_))
    ));
}
