use super::*;
use crate::SparseMerkleTree;
use alloy_primitives::keccak256;
use proptest::prelude::*;

fn key(i: u64) -> B256 {
    keccak256(i.to_be_bytes())
}

fn flip_bit(x: B256, index: usize) -> B256 {
    let mut out = x;
    out.0[index / 8] ^= 0x80 >> (index % 8);
    out
}

fn partial_for(tree: &SparseMerkleTree, keys: &[B256]) -> PartialSmt {
    let proofs: Vec<(B256, Option<B256>, SmtProof)> = keys
        .iter()
        .map(|k| (*k, tree.get(k), tree.prove(k)))
        .collect();
    PartialSmt::from_proofs(tree.root(), proofs.iter().map(|(k, v, p)| (*k, *v, p))).unwrap()
}

#[test]
fn empty_tree_is_fully_known_after_one_exclusion_proof() {
    let tree = SparseMerkleTree::new();
    let mut p = partial_for(&tree, &[key(1)]);
    assert_eq!(p.root(), B256::ZERO);
    assert_eq!(p.get(&key(2)), Ok(None));
    let mut full = tree.clone();
    for i in 0..20 {
        let v = key(100 + i);
        assert_eq!(p.insert(key(i), v), Ok(full.insert(key(i), v)));
    }
    for i in 0..20 {
        assert_eq!(p.remove(&key(i)), Ok(full.remove(&key(i))));
    }
    assert_eq!(p.root(), B256::ZERO);
}

#[test]
fn an_unproven_key_is_unwitnessed_and_never_read_as_absent() {
    let tree = SparseMerkleTree::from_leaves((0..64).map(|i| (key(i), key(1000 + i))));
    let mut p = partial_for(&tree, &[key(0)]);
    // With 64 keys the path of some other present key must leave the proven path early.
    let outside: Vec<B256> = (1..64).map(key).filter(|k| p.get(k).is_err()).collect();
    assert!(!outside.is_empty());
    for k in &outside {
        assert_eq!(p.get(k), Err(PartialSmtError::Unwitnessed { key: *k }));
        let before = p.clone();
        assert_eq!(
            p.insert(*k, key(5)),
            Err(PartialSmtError::Unwitnessed { key: *k })
        );
        assert_eq!(p.remove(k), Err(PartialSmtError::Unwitnessed { key: *k }));
        assert_eq!(p, before);
    }
}

#[test]
fn removal_onto_an_opaque_sibling_is_refused_and_changes_nothing() {
    // Two keys differing only in the first bit: the root has two leaf children.
    let a = B256::with_last_byte(1);
    let b = flip_bit(a, 0);
    // And a third key deep under `b`'s side so that b's side is internal.
    let c = flip_bit(b, 200);
    let mut full = SparseMerkleTree::from_leaves([(a, key(1)), (b, key(2)), (c, key(3))]);
    // Witness only `b`: removing it leaves `c` alone under an internal chain; the sibling of the
    // chain is `a`'s leaf, opaque in the witness except at the root level.
    let mut p = partial_for(&full, &[b]);
    let before = p.clone();
    assert_eq!(
        p.remove(&b),
        Err(PartialSmtError::CannotCollapse { key: b })
    );
    assert_eq!(p, before);
    // Proving `c` too reveals the sibling leaf, and removal then matches the full tree.
    let mut p = partial_for(&full, &[b, c]);
    assert_eq!(p.remove(&b), Ok(full.remove(&b)));
}

#[test]
fn conflicting_or_stale_proofs_are_refused() {
    let mut full = SparseMerkleTree::from_leaves((0..8).map(|i| (key(i), key(100 + i))));
    let old_proof = full.prove(&key(3));
    let mut p = partial_for(&full, &[key(1)]);
    p.insert(key(1), key(7)).unwrap();
    full.insert(key(1), key(7));
    assert_eq!(p.root(), full.root());
    // A proof of the old tree does not verify against the new root.
    assert!(matches!(
        p.add_proof(key(3), Some(key(103)), &old_proof),
        Err(PartialSmtError::BadProof { .. })
    ));
    // A proof of the current tree does.
    p.add_proof(key(3), Some(key(103)), &full.prove(&key(3)))
        .unwrap();
    assert_eq!(p.get(&key(3)), Ok(Some(key(103))));
}

fn keys_strategy() -> impl Strategy<Value = Vec<B256>> {
    prop::collection::vec(
        prop_oneof![
            3 => (0u64..200).prop_map(key),
            // keys sharing long prefixes with others
            1 => ((0u64..200), 200usize..256).prop_map(|(i, b)| flip_bit(key(i), b)),
        ],
        0..120,
    )
}

#[derive(Clone, Debug)]
enum Op {
    Insert(usize, B256),
    Remove(usize),
}

fn ops_strategy() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            3 => (any::<usize>(), any::<[u8; 32]>()).prop_map(|(i, v)| Op::Insert(i, B256::from(v))),
            2 => any::<usize>().prop_map(Op::Remove),
        ],
        0..30,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Partial root == full root before and after the same writes to witnessed keys.
    #[test]
    fn partial_root_tracks_the_full_tree(
        present in keys_strategy(),
        touched_present in prop::collection::vec(any::<usize>(), 0..8),
        touched_absent in prop::collection::vec(
            prop_oneof![(200u64..400).prop_map(key), ((0u64..200), 250usize..256)
                .prop_map(|(i, b)| flip_bit(key(i), b))], 0..6),
        ops in ops_strategy(),
    ) {
        let mut full = SparseMerkleTree::from_leaves(
            present.iter().enumerate().map(|(i, k)| (*k, key(10_000 + i as u64))));
        let mut touched: Vec<B256> = touched_absent;
        if !present.is_empty() {
            touched.extend(touched_present.iter().map(|i| present[i % present.len()]));
        }
        let mut p = partial_for(&full, &touched);
        prop_assert_eq!(p.root(), full.root());
        for k in &touched {
            prop_assert_eq!(p.get(k), Ok(full.get(k)));
        }
        // Every other key reads either its true value or fails; never a wrong value.
        for k in &present {
            if let Ok(v) = p.get(k) {
                prop_assert_eq!(v, full.get(k));
            }
        }
        if touched.is_empty() {
            return Ok(());
        }
        for op in ops {
            match op {
                Op::Insert(i, v) => {
                    let k = touched[i % touched.len()];
                    prop_assert_eq!(p.insert(k, v), Ok(full.insert(k, v)));
                }
                Op::Remove(i) => {
                    let k = touched[i % touched.len()];
                    let before = p.clone();
                    match p.remove(&k) {
                        Ok(root) => prop_assert_eq!(root, full.remove(&k)),
                        Err(e) => {
                            prop_assert_eq!(e, PartialSmtError::CannotCollapse { key: k });
                            prop_assert_eq!(&p, &before);
                            // the full tree really collapses there: the key is present
                            prop_assert!(full.get(&k).is_some());
                        }
                    }
                }
            }
            prop_assert_eq!(p.root(), full.root());
            for k in &touched {
                prop_assert_eq!(p.get(k), Ok(full.get(k)));
            }
        }
    }

    /// With every key witnessed, no write ever fails.
    #[test]
    fn fully_witnessed_trees_never_refuse_writes(present in keys_strategy(), ops in ops_strategy()) {
        let mut full = SparseMerkleTree::from_leaves(
            present.iter().enumerate().map(|(i, k)| (*k, key(10_000 + i as u64))));
        let mut p = partial_for(&full, &present);
        if present.is_empty() {
            return Ok(());
        }
        for op in ops {
            match op {
                Op::Insert(i, v) => {
                    let k = present[i % present.len()];
                    prop_assert_eq!(p.insert(k, v), Ok(full.insert(k, v)));
                }
                Op::Remove(i) => {
                    let k = present[i % present.len()];
                    prop_assert_eq!(p.remove(&k), Ok(full.remove(&k)));
                }
            }
        }
    }

    /// Any tampered sibling, proof leaf or claimed value is refused, and changes nothing.
    #[test]
    fn tampered_proofs_are_refused(
        present in keys_strategy().prop_filter("some keys", |k| k.len() > 1),
        which in any::<usize>(),
        absent_key in (200u64..400).prop_map(key),
        bit_index in 0usize..256,
        choose in any::<usize>(),
    ) {
        let full = SparseMerkleTree::from_leaves(
            present.iter().enumerate().map(|(i, k)| (*k, key(10_000 + i as u64))));
        let base = partial_for(&full, &[present[0]]);
        for k in [present[which % present.len()], absent_key] {
            let value = full.get(&k);
            let proof = full.prove(&k);
            let mut tampered: Vec<(Option<B256>, SmtProof)> = Vec::new();
            for i in 0..proof.siblings.len() {
                let mut t = proof.clone();
                t.siblings[i] = flip_bit(t.siblings[i], bit_index);
                tampered.push((value, t));
            }
            if let Some((lk, lv)) = proof.leaf {
                let mut t = proof.clone();
                t.leaf = Some((lk, flip_bit(lv, bit_index)));
                tampered.push((value, t));
                let mut t = proof.clone();
                t.leaf = Some((flip_bit(lk, bit_index), lv));
                tampered.push((value, t));
                let mut t = proof.clone();
                t.leaf = None;
                tampered.push((value, t));
            }
            let mut t = proof.clone();
            t.siblings.push(key(choose as u64));
            tampered.push((value, t));
            if !proof.siblings.is_empty() {
                let mut t = proof.clone();
                t.siblings.pop();
                tampered.push((value, t));
            }
            // claimed value changed
            let other = value.map_or(Some(key(1)), |v| Some(flip_bit(v, bit_index)));
            tampered.push((other, proof.clone()));
            if value.is_some() {
                tampered.push((None, proof.clone()));
            }
            for (v, t) in tampered {
                let mut p = base.clone();
                prop_assert!(p.add_proof(k, v, &t).is_err(), "tampered proof accepted");
                prop_assert_eq!(&p, &base);
            }
            let mut p = base.clone();
            prop_assert!(p.add_proof(k, value, &proof).is_ok());
        }
    }
}
