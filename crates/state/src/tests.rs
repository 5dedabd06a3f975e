use super::*;

use alloy_primitives::{b256, U256};
use proptest::prelude::*;
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------------------------
// Reference implementation: computes the compact root from scratch, independently of the tree's
// bit helpers and hashing helpers.
// ---------------------------------------------------------------------------------------------

fn ref_leaf(key: &B256, value: &B256) -> B256 {
    keccak256([&[0u8][..], key.as_slice(), value.as_slice()].concat())
}

fn ref_internal(left: &B256, right: &B256) -> B256 {
    keccak256([&[1u8][..], left.as_slice(), right.as_slice()].concat())
}

fn ref_subtree(depth: usize, leaves: &[(B256, B256)]) -> B256 {
    match leaves.len() {
        0 => B256::ZERO,
        1 => ref_leaf(&leaves[0].0, &leaves[0].1),
        _ => {
            assert!(depth < 256, "two distinct keys cannot share 256 bits");
            let (left, right): (Vec<_>, Vec<_>) = leaves
                .iter()
                .partition(|(key, _)| !U256::from_be_bytes(key.0).bit(255 - depth));
            ref_internal(
                &ref_subtree(depth + 1, &left),
                &ref_subtree(depth + 1, &right),
            )
        }
    }
}

fn reference_root(model: &BTreeMap<B256, B256>) -> B256 {
    let leaves: Vec<(B256, B256)> = model
        .iter()
        .filter(|(_, v)| !v.is_zero())
        .map(|(k, v)| (*k, *v))
        .collect();
    ref_subtree(0, &leaves)
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

const BASES: [B256; 3] = [
    b256!("5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"),
    b256!("0000000000000000000000000000000000000000000000000000000000000000"),
    b256!("c3f0e1d2b3a4958677685948a3b2c1d0ffeeddccbbaa99887766554433221100"),
];

fn flip_bit(key: B256, index: usize) -> B256 {
    let mut out = key;
    out.0[index / 8] ^= 0x80 >> (index % 8);
    out
}

/// Keys that often collide with each other and share long prefixes (down to all but the last bit).
fn key_strategy() -> impl Strategy<Value = B256> {
    prop_oneof![
        2 => any::<[u8; 32]>().prop_map(B256::from),
        2 => (0..BASES.len(), 0..256usize).prop_map(|(b, i)| flip_bit(BASES[b], i)),
        1 => (0..BASES.len(), 248..256usize, 248..256usize)
            .prop_map(|(b, i, j)| flip_bit(flip_bit(BASES[b], i), j)),
        1 => (0..BASES.len(), any::<u8>()).prop_map(|(b, x)| {
            let mut key = BASES[b];
            key.0[31] = x;
            key
        }),
    ]
}

fn value_strategy() -> impl Strategy<Value = B256> {
    prop_oneof![
        4 => any::<[u8; 32]>().prop_map(B256::from),
        1 => Just(B256::ZERO),
        1 => (1u8..4).prop_map(B256::repeat_byte),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Insert(B256, B256),
    Remove(B256),
    Batch(Vec<(B256, B256)>),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (key_strategy(), value_strategy()).prop_map(|(k, v)| Op::Insert(k, v)),
        1 => key_strategy().prop_map(Op::Remove),
        2 => prop::collection::vec((key_strategy(), value_strategy()), 0..40).prop_map(Op::Batch),
    ]
}

fn leaves_strategy(max: usize) -> impl Strategy<Value = BTreeMap<B256, B256>> {
    prop::collection::btree_map(
        key_strategy(),
        any::<[u8; 32]>()
            .prop_map(B256::from)
            .prop_filter("nonzero", |v| !v.is_zero()),
        0..max,
    )
}

fn apply_to_model(model: &mut BTreeMap<B256, B256>, key: B256, value: B256) {
    if value.is_zero() {
        model.remove(&key);
    } else {
        model.insert(key, value);
    }
}

fn keccak_key(i: u64) -> B256 {
    keccak256(i.to_be_bytes())
}

// ---------------------------------------------------------------------------------------------
// Hashing and shape
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_tree() {
    let tree = SparseMerkleTree::new();
    assert_eq!(tree.root(), B256::ZERO);
    assert!(tree.is_empty());
    assert_eq!(tree.len(), 0);
    assert_eq!(SparseMerkleTree::from_leaves([]).root(), B256::ZERO);
    let proof = tree.prove(&BASES[0]);
    assert_eq!(
        proof,
        SmtProof {
            siblings: vec![],
            leaf: None
        }
    );
    verify_proof(B256::ZERO, BASES[0], None, &proof).unwrap();
}

#[test]
fn hashing_matches_documented_preimages() {
    let key = BASES[0];
    let value = B256::repeat_byte(7);
    let mut preimage = vec![0x00];
    preimage.extend_from_slice(key.as_slice());
    preimage.extend_from_slice(value.as_slice());
    assert_eq!(leaf_hash(&key, &value), keccak256(&preimage));
    preimage[0] = 0x01;
    assert_eq!(internal_hash(&key, &value), keccak256(&preimage));
}

#[test]
fn known_small_trees() {
    let v = B256::repeat_byte(9);
    let k0 = B256::ZERO;
    let k_right = b256!("8000000000000000000000000000000000000000000000000000000000000000");
    let k_left_right = b256!("4000000000000000000000000000000000000000000000000000000000000000");

    // One leaf: the root is the leaf hash.
    let mut tree = SparseMerkleTree::new();
    assert_eq!(tree.insert(k0, v), leaf_hash(&k0, &v));

    // Keys diverging at bit 0.
    let root = tree.insert(k_right, v);
    assert_eq!(
        root,
        internal_hash(&leaf_hash(&k0, &v), &leaf_hash(&k_right, &v))
    );

    // Keys diverging at bit 1: a chain node with an empty right sibling.
    let tree = SparseMerkleTree::from_leaves([(k0, v), (k_left_right, v)]);
    let inner = internal_hash(&leaf_hash(&k0, &v), &leaf_hash(&k_left_right, &v));
    assert_eq!(tree.root(), internal_hash(&inner, &B256::ZERO));
    let proof = tree.prove(&k_left_right);
    assert_eq!(proof.siblings, vec![B256::ZERO, leaf_hash(&k0, &v)]);
    assert_eq!(proof.leaf, Some((k_left_right, v)));
}

#[test]
fn keys_differing_in_last_bit_make_a_256_deep_proof() {
    let a = BASES[2];
    let b = flip_bit(a, 255);
    let tree =
        SparseMerkleTree::from_leaves([(a, B256::repeat_byte(1)), (b, B256::repeat_byte(2))]);
    let proof = tree.prove(&b);
    assert_eq!(proof.siblings.len(), MAX_PROOF_SIBLINGS);
    assert_eq!(proof.siblings[255], leaf_hash(&a, &B256::repeat_byte(1)));
    assert!(proof.siblings[..255].iter().all(|s| s.is_zero()));
    verify_proof(tree.root(), b, Some(B256::repeat_byte(2)), &proof).unwrap();
    // Removing one leaves a single-leaf tree again.
    let mut tree = tree;
    assert_eq!(tree.remove(&a), leaf_hash(&b, &B256::repeat_byte(2)));
    assert!(
        tree.nodes.is_empty(),
        "stale internal nodes: {}",
        tree.nodes.len()
    );
}

#[test]
fn batch_is_last_write_wins() {
    let (k, v1, v2) = (BASES[0], B256::repeat_byte(1), B256::repeat_byte(2));
    let mut tree = SparseMerkleTree::new();
    tree.apply_batch([(k, v1), (k, v2)]);
    assert_eq!(tree.get(&k), Some(v2));
    tree.apply_batch([(k, v1), (k, B256::ZERO)]);
    assert_eq!(tree.get(&k), None);
    assert_eq!(tree.root(), B256::ZERO);
    tree.apply_batch([(k, B256::ZERO), (k, v1)]);
    assert_eq!(tree.get(&k), Some(v1));
    let tree = SparseMerkleTree::from_leaves([(k, v1), (k, B256::ZERO), (BASES[2], v2)]);
    assert_eq!(tree.get(&k), None);
    assert_eq!(tree.len(), 1);
}

#[test]
fn no_op_writes_keep_the_root() {
    let mut tree =
        SparseMerkleTree::from_leaves((0..100).map(|i| (keccak_key(i), keccak_key(i + 1000))));
    let root = tree.root();
    assert_eq!(tree.remove(&keccak_key(5000)), root);
    assert_eq!(tree.insert(keccak_key(3), keccak_key(1003)), root);
    assert_eq!(tree.apply_batch([]), root);
    assert_ne!(tree.insert(keccak_key(3), keccak_key(1)), root);
}

#[test]
fn iter_is_key_ordered() {
    let tree = SparseMerkleTree::from_leaves((0..50).map(|i| (keccak_key(i), keccak_key(i))));
    let keys: Vec<B256> = tree.iter().map(|(k, _)| *k).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), 50);
    assert!(tree.iter().all(|(k, v)| k == v));
}

// ---------------------------------------------------------------------------------------------
// Proofs
// ---------------------------------------------------------------------------------------------

const ALL_BYTES: &[usize] = &[
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    26, 27, 28, 29, 30, 31,
];
/// For deep proofs (up to 256 siblings, each check hashing up to 256 times) a sample of bytes.
const SOME_BYTES: &[usize] = &[0, 13, 31];

/// Asserts that changing any byte of the root, the claimed value and the leaf entry, and any of
/// the `sibling_bytes` of every sibling, is rejected, as is dropping or adding a sibling.
fn assert_tamper_evident(
    root: B256,
    key: B256,
    value: Option<B256>,
    proof: &SmtProof,
    sibling_bytes: &[usize],
) {
    verify_proof(root, key, value, proof).unwrap();
    for i in 0..32 {
        let mut bad_root = root;
        bad_root.0[i] ^= 0x01;
        assert!(verify_proof(bad_root, key, value, proof).is_err());
        if let Some(v) = value {
            let mut bad_value = v;
            bad_value.0[i] ^= 0x80;
            assert!(verify_proof(root, key, Some(bad_value), proof).is_err());
        }
    }
    for s in 0..proof.siblings.len() {
        for &i in sibling_bytes {
            let mut bad = proof.clone();
            bad.siblings[s].0[i] ^= 0x01;
            assert!(
                verify_proof(root, key, value, &bad).is_err(),
                "sibling {s} byte {i}"
            );
        }
    }
    if let Some((leaf_key, leaf_value)) = proof.leaf {
        for i in 0..32 {
            let mut bad = proof.clone();
            let mut k = leaf_key;
            k.0[i] ^= 0x01;
            bad.leaf = Some((k, leaf_value));
            assert!(
                verify_proof(root, key, value, &bad).is_err(),
                "leaf key byte {i}"
            );
            let mut v = leaf_value;
            v.0[i] ^= 0x01;
            bad.leaf = Some((leaf_key, v));
            assert!(
                verify_proof(root, key, value, &bad).is_err(),
                "leaf value byte {i}"
            );
        }
        let mut bad = proof.clone();
        bad.leaf = None;
        assert!(verify_proof(root, key, value, &bad).is_err());
    }
    // Dropping or adding a sibling.
    if !proof.siblings.is_empty() {
        let mut bad = proof.clone();
        bad.siblings.pop();
        assert!(verify_proof(root, key, value, &bad).is_err());
    }
    let mut bad = proof.clone();
    bad.siblings.push(B256::ZERO);
    assert!(verify_proof(root, key, value, &bad).is_err());
}

#[test]
fn proofs_in_a_larger_tree() {
    let tree = SparseMerkleTree::from_leaves(
        (0..1000).map(|i| (keccak_key(i), keccak_key(i + 1_000_000))),
    );
    let root = tree.root();
    for i in (0..1000).step_by(97) {
        let key = keccak_key(i);
        let value = keccak_key(i + 1_000_000);
        let proof = tree.prove(&key);
        assert_eq!(proof.leaf, Some((key, value)));
        assert_tamper_evident(root, key, Some(value), &proof, ALL_BYTES);
        assert_eq!(
            verify_proof(root, key, None, &proof),
            Err(StateError::ExclusionLeafIsTarget { key })
        );
        assert_eq!(
            verify_proof(root, key, Some(B256::repeat_byte(1)), &proof),
            Err(StateError::ValueMismatch {
                key,
                claimed: B256::repeat_byte(1),
                found: value
            })
        );
        assert_eq!(
            verify_proof(root, key, Some(B256::ZERO), &proof),
            Err(StateError::ZeroValueClaimed { key })
        );
        // Someone else's proof does not prove this key.
        let other = tree.prove(&keccak_key(i + 1));
        assert!(verify_proof(root, key, Some(value), &other).is_err());
    }

    let (mut empty_slot, mut other_leaf) = (0, 0);
    for i in 5000..5200 {
        let key = keccak_key(i);
        let proof = tree.prove(&key);
        match proof.leaf {
            None => empty_slot += 1,
            Some((k, _)) => {
                assert_ne!(k, key);
                other_leaf += 1;
            }
        }
        if i % 20 == 0 {
            assert_tamper_evident(root, key, None, &proof, ALL_BYTES);
        } else {
            verify_proof(root, key, None, &proof).unwrap();
        }
        assert!(verify_proof(root, key, Some(B256::repeat_byte(1)), &proof).is_err());
    }
    assert!(
        empty_slot > 0 && other_leaf > 0,
        "empty={empty_slot} other={other_leaf}"
    );
}

#[test]
fn deep_proofs_are_tamper_evident() {
    let a = BASES[0];
    let b = flip_bit(a, 200);
    let c = flip_bit(a, 255);
    let absent_empty = flip_bit(a, 100);
    let absent_empty_deep = flip_bit(a, 254);
    let absent_other = flip_bit(b, 230);
    let tree = SparseMerkleTree::from_leaves([
        (a, B256::repeat_byte(1)),
        (b, B256::repeat_byte(2)),
        (c, B256::repeat_byte(3)),
    ]);
    let root = tree.root();
    assert_tamper_evident(
        root,
        c,
        Some(B256::repeat_byte(3)),
        &tree.prove(&c),
        SOME_BYTES,
    );
    assert_tamper_evident(
        root,
        b,
        Some(B256::repeat_byte(2)),
        &tree.prove(&b),
        SOME_BYTES,
    );
    let proof = tree.prove(&absent_empty);
    assert_eq!(proof.leaf, None);
    assert_eq!(proof.siblings.len(), 101);
    assert_tamper_evident(root, absent_empty, None, &proof, SOME_BYTES);
    let proof = tree.prove(&absent_empty_deep);
    assert_eq!(proof.leaf, None);
    assert_eq!(proof.siblings.len(), 255);
    assert_tamper_evident(root, absent_empty_deep, None, &proof, SOME_BYTES);
    let proof = tree.prove(&absent_other);
    assert_eq!(proof.leaf, Some((b, B256::repeat_byte(2))));
    assert_eq!(proof.siblings.len(), 201);
    assert_tamper_evident(root, absent_other, None, &proof, SOME_BYTES);
    // The exclusion leaf must lie on the key's path.
    let far_key = flip_bit(b, 3);
    let err = verify_proof(root, far_key, None, &proof).unwrap_err();
    assert!(
        matches!(
            err,
            StateError::LeafOffPath {
                common_bits: 3,
                depth: 201,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn old_proofs_fail_against_new_roots() {
    let mut tree =
        SparseMerkleTree::from_leaves((0..300).map(|i| (keccak_key(i), keccak_key(i + 7))));
    let present = keccak_key(10);
    let absent = keccak_key(10_000);
    let old_root = tree.root();
    let old_present = tree.prove(&present);
    let old_absent = tree.prove(&absent);

    // Overwrite.
    let new_root = tree.insert(present, B256::repeat_byte(5));
    assert!(verify_proof(new_root, present, Some(keccak_key(17)), &old_present).is_err());
    verify_proof(old_root, present, Some(keccak_key(17)), &old_present).unwrap();
    verify_proof(
        new_root,
        present,
        Some(B256::repeat_byte(5)),
        &tree.prove(&present),
    )
    .unwrap();

    // Insert of the absent key.
    let newer_root = tree.insert(absent, B256::repeat_byte(6));
    assert!(verify_proof(newer_root, absent, None, &old_absent).is_err());
    verify_proof(
        newer_root,
        absent,
        Some(B256::repeat_byte(6)),
        &tree.prove(&absent),
    )
    .unwrap();

    // Delete.
    let proof = tree.prove(&present);
    let newest_root = tree.remove(&present);
    assert!(verify_proof(newest_root, present, Some(B256::repeat_byte(5)), &proof).is_err());
    verify_proof(newest_root, present, None, &tree.prove(&present)).unwrap();
}

#[test]
fn too_many_siblings_is_rejected() {
    let proof = SmtProof {
        siblings: vec![B256::ZERO; 257],
        leaf: None,
    };
    assert_eq!(
        verify_proof(B256::ZERO, B256::ZERO, None, &proof),
        Err(StateError::TooManySiblings { len: 257, max: 256 })
    );
}

#[test]
fn zero_leaf_value_in_proof_is_rejected() {
    let key = BASES[0];
    // Forge a "leaf" with a zero value whose hash we use as the root.
    let root = leaf_hash(&BASES[2], &B256::ZERO);
    let proof = SmtProof {
        siblings: vec![],
        leaf: Some((BASES[2], B256::ZERO)),
    };
    assert_eq!(
        verify_proof(root, key, None, &proof),
        Err(StateError::ZeroValueInProof { leaf_key: BASES[2] })
    );
    let proof = SmtProof {
        siblings: vec![],
        leaf: None,
    };
    assert_eq!(
        verify_proof(B256::ZERO, key, Some(B256::repeat_byte(1)), &proof),
        Err(StateError::MissingLeaf { key })
    );
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn updates_match_reference(ops in prop::collection::vec(op_strategy(), 1..30)) {
        let mut tree = SparseMerkleTree::new();
        let mut model = BTreeMap::new();
        let mut history = Vec::new();
        for op in ops {
            let returned = match op {
                Op::Insert(k, v) => {
                    apply_to_model(&mut model, k, v);
                    history.push((k, v));
                    tree.insert(k, v)
                }
                Op::Remove(k) => {
                    model.remove(&k);
                    history.push((k, B256::ZERO));
                    tree.remove(&k)
                }
                Op::Batch(writes) => {
                    for (k, v) in &writes {
                        apply_to_model(&mut model, *k, *v);
                    }
                    history.extend(writes.iter().copied());
                    tree.apply_batch(writes)
                }
            };
            prop_assert_eq!(returned, tree.root());
            prop_assert_eq!(tree.root(), reference_root(&model));
            prop_assert_eq!(tree.len(), model.len());
        }
        let expected: Vec<(B256, B256)> = model.iter().map(|(k, v)| (*k, *v)).collect();
        let actual: Vec<(B256, B256)> = tree.iter().map(|(k, v)| (*k, *v)).collect();
        prop_assert_eq!(actual, expected);
        for (k, v) in &model {
            prop_assert_eq!(tree.get(k), Some(*v));
        }

        let rebuilt = SparseMerkleTree::from_leaves(tree.iter().map(|(k, v)| (*k, *v)));
        prop_assert_eq!(rebuilt.root(), tree.root());
        // The incremental cache holds exactly the internal nodes of a fresh build: none stale.
        prop_assert_eq!(&rebuilt.nodes, &tree.nodes);
        // Replaying the whole write history in one go gives the same tree.
        let replayed = SparseMerkleTree::from_leaves(history.iter().copied());
        prop_assert_eq!(replayed.root(), tree.root());
        let mut batched = SparseMerkleTree::new();
        prop_assert_eq!(batched.apply_batch(history), tree.root());
    }

    #[test]
    fn insertion_order_does_not_matter(
        (leaves, shuffled) in leaves_strategy(80).prop_flat_map(|leaves| {
            let entries: Vec<(B256, B256)> = leaves.into_iter().collect();
            (Just(entries.clone()), Just(entries).prop_shuffle())
        })
    ) {
        let mut in_order = SparseMerkleTree::new();
        for (k, v) in &leaves {
            in_order.insert(*k, *v);
        }
        let mut shuffled_tree = SparseMerkleTree::new();
        for (k, v) in &shuffled {
            shuffled_tree.insert(*k, *v);
        }
        let model: BTreeMap<B256, B256> = leaves.iter().copied().collect();
        prop_assert_eq!(in_order.root(), reference_root(&model));
        prop_assert_eq!(shuffled_tree.root(), in_order.root());
        prop_assert_eq!(SparseMerkleTree::from_leaves(shuffled).root(), in_order.root());
        prop_assert_eq!(&shuffled_tree.nodes, &in_order.nodes);
    }

    #[test]
    fn proofs_verify(
        leaves in leaves_strategy(120),
        probes in prop::collection::vec(key_strategy(), 1..20),
        tamper in (any::<prop::sample::Index>(), 0..32usize, 1u8..=255),
    ) {
        let tree = SparseMerkleTree::from_leaves(leaves.iter().map(|(k, v)| (*k, *v)));
        let root = tree.root();
        prop_assert_eq!(root, reference_root(&leaves));
        let probes = probes.into_iter().chain(leaves.keys().take(20).copied());
        for key in probes {
            let proof = tree.prove(&key);
            prop_assert!(proof.siblings.len() <= MAX_PROOF_SIBLINGS);
            match leaves.get(&key) {
                Some(value) => {
                    prop_assert_eq!(verify_proof(root, key, Some(*value), &proof), Ok(()));
                    prop_assert!(verify_proof(root, key, None, &proof).is_err());
                    let mut wrong = *value;
                    wrong.0[tamper.1] ^= tamper.2;
                    prop_assert!(verify_proof(root, key, Some(wrong), &proof).is_err());
                }
                None => {
                    prop_assert_eq!(verify_proof(root, key, None, &proof), Ok(()));
                    prop_assert!(
                        verify_proof(root, key, Some(B256::repeat_byte(1)), &proof).is_err()
                    );
                }
            }
            let value = leaves.get(&key).copied();
            if !proof.siblings.is_empty() {
                let mut bad = proof.clone();
                let s = tamper.0.index(bad.siblings.len());
                bad.siblings[s].0[tamper.1] ^= tamper.2;
                prop_assert!(verify_proof(root, key, value, &bad).is_err());
            }
            let mut bad_root = root;
            bad_root.0[tamper.1] ^= tamper.2;
            prop_assert!(verify_proof(bad_root, key, value, &proof).is_err());
        }
    }

    #[test]
    fn verify_never_panics(
        root in any::<[u8; 32]>().prop_map(B256::from),
        key in key_strategy(),
        value in prop::option::of(value_strategy()),
        siblings in prop::collection::vec(any::<[u8; 32]>().prop_map(B256::from), 0..300),
        leaf in prop::option::of((key_strategy(), value_strategy())),
        leaf_is_key in any::<bool>(),
    ) {
        let leaf = leaf.map(|(k, v)| (if leaf_is_key { key } else { k }, v));
        let len = siblings.len();
        let result = verify_proof(root, key, value, &SmtProof { siblings, leaf });
        prop_assert!(result.is_err());
        if len > MAX_PROOF_SIBLINGS {
            prop_assert_eq!(result, Err(StateError::TooManySiblings { len, max: MAX_PROOF_SIBLINGS }));
        }
    }
}

#[test]
fn bit_helpers() {
    let key = b256!("8001000000000000000000000000000000000000000000000000000000000001");
    let set: BTreeSet<u16> = (0..256).filter(|i| bit(&key, *i)).collect();
    assert_eq!(set, BTreeSet::from([0, 15, 255]));
    assert!(!bit(&key, 256));
    assert_eq!(with_bit(&B256::ZERO, 15).0[1], 0x01);
    assert_eq!(subtree_last(&B256::ZERO, 0), B256::repeat_byte(0xff));
    assert_eq!(subtree_last(&B256::ZERO, 256), B256::ZERO);
    let last = subtree_last(&B256::ZERO, 9);
    assert_eq!((last.0[0], last.0[1], last.0[2]), (0x00, 0x7f, 0xff));
    assert_eq!(common_prefix_bits(&key, &key), 256);
    assert_eq!(common_prefix_bits(&key, &flip_bit(key, 200)), 200);
    assert_eq!(common_prefix_bits(&key, &flip_bit(key, 0)), 0);
}
