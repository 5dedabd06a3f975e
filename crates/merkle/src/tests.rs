use super::*;
use alloy_primitives::{b256, U256};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Independent reference implementation (does not use any code from the crate).
// ---------------------------------------------------------------------------------------------

fn concat_hash(a: &B256, b: &[u8]) -> B256 {
    keccak256([a.as_slice(), b].concat())
}

/// Hashes the full tree layer by layer, padding odd layers with the zero subtree of that level,
/// up to depth 32, then mixes in the size as `abi.encode(bytes32, uint256)`.
fn naive_raw_root(leaves: &[B256]) -> B256 {
    let mut zero = B256::ZERO;
    let mut layer = leaves.to_vec();
    for _ in 0..32 {
        if layer.len() % 2 == 1 {
            layer.push(zero);
        }
        layer = layer
            .chunks(2)
            .map(|p| concat_hash(&p[0], p[1].as_slice()))
            .collect();
        zero = concat_hash(&zero, zero.as_slice());
    }
    assert!(layer.len() <= 1);
    layer.first().copied().unwrap_or(zero)
}

fn naive_root(leaves: &[B256]) -> B256 {
    let size = U256::from(leaves.len()).to_be_bytes::<32>();
    concat_hash(&naive_raw_root(leaves), &size)
}

fn leaf(i: u64) -> B256 {
    keccak256(i.to_be_bytes())
}

fn leaves(n: u64) -> Vec<B256> {
    (0..n).map(leaf).collect()
}

/// One bit position in every byte of a hash (`32` flips), the bit within each byte drawn from
/// `seed`, so that every byte is tampered with while keeping the property tests fast.
fn bit_per_byte(seed: u64) -> impl Iterator<Item = usize> {
    (0..32).map(move |byte| byte * 8 + (seed.rotate_left(byte as u32 * 3) & 7) as usize)
}

fn flip(h: B256, bit: usize) -> B256 {
    let mut bytes = h.0;
    bytes[bit / 8] ^= 1 << (bit % 8);
    B256::from(bytes)
}

// ---------------------------------------------------------------------------------------------
// Unit tests
// ---------------------------------------------------------------------------------------------

#[test]
fn zero_hashes_chain() {
    let z = zero_hashes();
    assert_eq!(z[0], B256::ZERO);
    // keccak256 of 64 zero bytes, a well-known constant.
    assert_eq!(
        z[1],
        b256!("ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5")
    );
    for h in 0..TREE_DEPTH {
        assert_eq!(z[h + 1], concat_hash(&z[h], z[h].as_slice()));
    }
    // Root of the empty depth-32 keccak tree (e.g. the Polygon zkEVM bridge's empty root).
    assert_eq!(
        z[TREE_DEPTH],
        b256!("27ae5ba08d7291c96c8cbddcc148bf48a6d68c7974b94356f53754ef6171d757")
    );
}

#[test]
fn empty_tree() {
    let tree = MessageTree::new();
    assert!(tree.is_empty());
    assert_eq!(tree.len(), 0);
    assert_eq!(naive_raw_root(&[]), zero_hashes()[TREE_DEPTH]);
    let expected = concat_hash(&zero_hashes()[TREE_DEPTH], &[0u8; 32]);
    assert_eq!(empty_root(), expected);
    assert_eq!(tree.root(), expected);
    assert_eq!(tree.root_at(0), Ok(expected));
    assert_eq!(naive_root(&[]), expected);
    assert_eq!(tree.leaf(0), None);
    assert!(tree.leaves().is_empty());
}

#[test]
fn hash_pair_and_mix_in_size_encodings() {
    let a = leaf(1);
    let b = leaf(2);
    assert_eq!(hash_pair(&a, &b), concat_hash(&a, b.as_slice()));
    assert_ne!(hash_pair(&a, &b), hash_pair(&b, &a));
    for size in [0u64, 1, 255, 256, 0xdead_beef, MAX_LEAVES, u64::MAX] {
        let enc = U256::from(size).to_be_bytes::<32>();
        assert_eq!(mix_in_size(a, size), concat_hash(&a, &enc));
    }
    assert_ne!(mix_in_size(a, 1), mix_in_size(a, 2));
}

#[test]
fn incremental_matches_naive_small_sizes() {
    let all = leaves(70);
    let mut tree = MessageTree::new();
    assert_eq!(tree.root(), naive_root(&[]));
    for (i, l) in all.iter().enumerate() {
        assert_eq!(tree.append(*l), Ok(i as u64));
        let prefix = &all[..=i];
        assert_eq!(tree.root(), naive_root(prefix), "size {}", i + 1);
        assert_eq!(tree.len(), i as u64 + 1);
        assert_eq!(tree.leaf(i as u64), Some(*l));
    }
    assert_eq!(tree.leaves(), &all[..]);
    for size in 0..=70u64 {
        assert_eq!(
            tree.root_at(size),
            Ok(naive_root(&all[..size as usize])),
            "root_at({size})"
        );
    }
    assert_eq!(MessageTree::from_leaves(all.clone()), Ok(tree));
}

#[test]
fn single_leaf_root_by_hand() {
    let l = leaf(7);
    let z = zero_hashes();
    let mut node = l;
    for zh in z.iter().take(TREE_DEPTH) {
        node = concat_hash(&node, zh.as_slice());
    }
    let mut tree = MessageTree::new();
    tree.append(l).unwrap();
    assert_eq!(tree.root(), mix_in_size(node, 1));
}

#[test]
fn zero_leaf_rejected_and_tree_unchanged() {
    let mut tree = MessageTree::from_leaves(leaves(3)).unwrap();
    let before = tree.clone();
    assert_eq!(
        tree.append(B256::ZERO),
        Err(MerkleError::ZeroLeaf { index: 3 })
    );
    assert_eq!(tree, before);
    assert_eq!(tree.root(), before.root());
    let mut with_zero = leaves(2);
    with_zero.push(B256::ZERO);
    assert_eq!(
        MessageTree::from_leaves(with_zero),
        Err(MerkleError::ZeroLeaf { index: 2 })
    );
}

#[test]
fn range_errors() {
    let mut tree = MessageTree::from_leaves(leaves(5)).unwrap();
    assert_eq!(
        tree.root_at(6),
        Err(MerkleError::SizeOutOfRange { size: 6, len: 5 })
    );
    assert_eq!(
        tree.inclusion_proof(0, 6),
        Err(MerkleError::SizeOutOfRange { size: 6, len: 5 })
    );
    assert_eq!(
        tree.inclusion_proof(3, 3),
        Err(MerkleError::IndexOutOfRange { index: 3, size: 3 })
    );
    assert_eq!(
        tree.inclusion_proof(0, 0),
        Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
    );
    assert_eq!(
        tree.extension_proof(4, 3),
        Err(MerkleError::OldSizeAfterNewSize {
            old_size: 4,
            new_size: 3
        })
    );
    assert_eq!(
        tree.extension_proof(1, 6),
        Err(MerkleError::SizeOutOfRange { size: 6, len: 5 })
    );
    assert_eq!(
        tree.truncate(6),
        Err(MerkleError::SizeOutOfRange { size: 6, len: 5 })
    );
    assert_eq!(tree.len(), 5);
    assert_eq!(tree.leaf(5), None);
    assert_eq!(tree.leaf(u64::MAX), None);
}

#[test]
fn proof_lengths() {
    let tree = MessageTree::from_leaves(leaves(9)).unwrap();
    for (size, d) in [
        (1u64, 0usize),
        (2, 1),
        (3, 2),
        (4, 2),
        (5, 3),
        (8, 3),
        (9, 4),
    ] {
        let p = tree.inclusion_proof(0, size).unwrap();
        assert_eq!(p.siblings.len(), d, "size {size}");
        verify_inclusion(tree.root_at(size).unwrap(), leaf(0), &p).unwrap();
        if size > 1 {
            let e = tree.extension_proof(1, size).unwrap();
            assert_eq!(e.hashes.len(), 1 + d, "size {size}");
            let old = tree.root_at(1).unwrap();
            verify_extension(old, tree.root_at(size).unwrap(), &e).unwrap();
        }
    }
    assert_eq!(levels_for(MAX_LEAVES), 32);
    assert_eq!(levels_for(MAX_LEAVES - 1), 32);
    assert_eq!(levels_for((1 << 31) + 1), 32);
    assert_eq!(levels_for(1 << 31), 31);
}

#[test]
fn inclusion_padding_must_be_zero() {
    let tree = MessageTree::from_leaves(leaves(5)).unwrap();
    let root = tree.root();
    let proof = tree.inclusion_proof(4, 5).unwrap();
    // Leaf 4 of 5: level-0 sibling (leaf 5) and level-1 sibling (leaves 6..8) are beyond the size.
    assert_eq!(proof.siblings.len(), 3);
    assert_eq!(proof.siblings[0], zero_hashes()[0]);
    assert_eq!(proof.siblings[1], zero_hashes()[1]);
    verify_inclusion(root, leaf(4), &proof).unwrap();
    for level in 0..2 {
        let mut bad = proof.clone();
        bad.siblings[level] = leaf(99);
        assert_eq!(
            verify_inclusion(root, leaf(4), &bad),
            Err(MerkleError::NonZeroPadding { level })
        );
    }
    let mut bad = proof.clone();
    bad.siblings.push(zero_hashes()[3]);
    assert_eq!(
        verify_inclusion(root, leaf(4), &bad),
        Err(MerkleError::BadProofLength {
            expected: 3,
            got: 4
        })
    );
    assert_eq!(
        verify_inclusion(root, B256::ZERO, &proof),
        Err(MerkleError::ZeroLeaf { index: 4 })
    );
}

#[test]
fn extension_padding_must_be_zero() {
    let tree = MessageTree::from_leaves(leaves(6)).unwrap();
    let old = tree.root_at(5).unwrap();
    let new = tree.root();
    let proof = tree.extension_proof(5, 6).unwrap();
    // k = 4 = 0b100, D = 3: [leaf 4, leaf 5 (right), node(1,3) = leaves 6..8 (right, beyond
    // new_size: zero), node(2,0) = leaves 0..4 (left)].
    assert_eq!(proof.hashes.len(), 4);
    assert_eq!(proof.hashes[0], leaf(4));
    assert_eq!(proof.hashes[1], leaf(5));
    assert_eq!(proof.hashes[2], zero_hashes()[1]);
    let left = hash_pair(
        &hash_pair(&leaf(0), &leaf(1)),
        &hash_pair(&leaf(2), &leaf(3)),
    );
    assert_eq!(proof.hashes[3], left);
    verify_extension(old, new, &proof).unwrap();
    let mut bad = proof.clone();
    bad.hashes[2] = leaf(99);
    assert_eq!(
        verify_extension(old, new, &bad),
        Err(MerkleError::NonZeroPadding { level: 1 })
    );
    let mut bad = proof.clone();
    bad.hashes.pop();
    assert_eq!(
        verify_extension(old, new, &bad),
        Err(MerkleError::BadProofLength {
            expected: 4,
            got: 3
        })
    );
    let mut bad = proof.clone();
    bad.hashes[0] = B256::ZERO;
    assert_eq!(
        verify_extension(old, new, &bad),
        Err(MerkleError::ZeroLeaf { index: 4 })
    );
}

#[test]
fn extension_degenerate_cases() {
    let tree = MessageTree::from_leaves(leaves(6)).unwrap();
    let r6 = tree.root();
    let r3 = tree.root_at(3).unwrap();
    let from_empty = tree.extension_proof(0, 6).unwrap();
    assert!(from_empty.hashes.is_empty());
    verify_extension(empty_root(), r6, &from_empty).unwrap();
    // Any new root extends the empty tree.
    verify_extension(empty_root(), leaf(1), &from_empty).unwrap();
    assert!(matches!(
        verify_extension(r3, r6, &from_empty),
        Err(MerkleError::OldRootMismatch { .. })
    ));
    let mut bad = from_empty.clone();
    bad.hashes.push(leaf(0));
    assert_eq!(
        verify_extension(empty_root(), r6, &bad),
        Err(MerkleError::BadProofLength {
            expected: 0,
            got: 1
        })
    );

    let same = tree.extension_proof(3, 3).unwrap();
    assert!(same.hashes.is_empty());
    verify_extension(r3, r3, &same).unwrap();
    assert!(verify_extension(r3, r6, &same).is_err());

    let backwards = ExtensionProof {
        old_size: 6,
        new_size: 3,
        hashes: vec![],
    };
    assert_eq!(
        verify_extension(r6, r3, &backwards),
        Err(MerkleError::OldSizeAfterNewSize {
            old_size: 6,
            new_size: 3
        })
    );
    let too_big = ExtensionProof {
        old_size: 1,
        new_size: MAX_LEAVES + 1,
        hashes: vec![],
    };
    assert_eq!(
        verify_extension(r6, r3, &too_big),
        Err(MerkleError::SizeExceedsCapacity {
            size: MAX_LEAVES + 1
        })
    );
}

#[test]
fn verify_capacity_bounds() {
    let proof = InclusionProof {
        index: 0,
        size: MAX_LEAVES + 1,
        siblings: vec![B256::ZERO; 33],
    };
    assert_eq!(
        verify_inclusion(B256::ZERO, leaf(0), &proof),
        Err(MerkleError::SizeExceedsCapacity {
            size: MAX_LEAVES + 1
        })
    );
    let proof = InclusionProof {
        index: MAX_LEAVES - 1,
        size: MAX_LEAVES,
        siblings: vec![],
    };
    assert_eq!(
        verify_inclusion(B256::ZERO, leaf(0), &proof),
        Err(MerkleError::BadProofLength {
            expected: 32,
            got: 0
        })
    );
    // A full tree's proof of its last leaf: 32 left siblings, no padding.
    let siblings: Vec<B256> = (100..132).map(leaf).collect();
    let mut node = leaf(0);
    for s in &siblings {
        node = concat_hash(s, node.as_slice());
    }
    let root = mix_in_size(node, MAX_LEAVES);
    let proof = InclusionProof {
        index: MAX_LEAVES - 1,
        size: MAX_LEAVES,
        siblings,
    };
    verify_inclusion(root, leaf(0), &proof).unwrap();
}

#[test]
fn truncate_examples() {
    let mut tree = MessageTree::from_leaves(leaves(37)).unwrap();
    for size in [37u64, 33, 32, 17, 16, 1, 0] {
        tree.truncate(size).unwrap();
        let fresh = MessageTree::from_leaves(leaves(size)).unwrap();
        assert_eq!(tree, fresh);
        assert_eq!(tree.root(), naive_root(&leaves(size)));
    }
    assert_eq!(tree, MessageTree::new());
}

#[test]
fn error_display_has_context() {
    let msg = MerkleError::IndexOutOfRange { index: 7, size: 3 }.to_string();
    assert!(msg.contains('7') && msg.contains('3'), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

fn arb_leaf() -> impl Strategy<Value = B256> {
    any::<[u8; 32]>()
        .prop_filter("non-zero leaf", |b| b != &[0u8; 32])
        .prop_map(B256::from)
}

fn arb_leaves(max: usize) -> impl Strategy<Value = Vec<B256>> {
    prop::collection::vec(arb_leaf(), 0..=max)
}

/// A tree with at least one leaf and two sizes `(a, b)` with `a <= b <= len` derived from `x, y`.
fn sizes(len: usize, x: usize, y: usize) -> (u64, u64) {
    let a = x % (len + 1);
    let b = y % (len + 1);
    (a.min(b) as u64, a.max(b) as u64)
}

fn arb_size() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(MAX_LEAVES - 1),
        Just(MAX_LEAVES),
        Just(MAX_LEAVES + 1),
        Just(u64::MAX),
        0u64..600,
        any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_root_at_every_size_matches_naive(ls in arb_leaves(300)) {
        let tree = MessageTree::from_leaves(ls.clone()).unwrap();
        prop_assert_eq!(tree.root(), naive_root(&ls));
        for size in 0..=ls.len() {
            prop_assert_eq!(tree.root_at(size as u64).unwrap(), naive_root(&ls[..size]));
        }
    }

    #[test]
    fn prop_inclusion_verifies_and_tampering_fails(
        ls in arb_leaves(300).prop_filter("non-empty", |l| !l.is_empty()),
        x in any::<usize>(),
        y in any::<usize>(),
        other in any::<usize>(),
        seed in any::<u64>(),
    ) {
        let tree = MessageTree::from_leaves(ls.clone()).unwrap();
        let size = 1 + (x % ls.len()) as u64;
        let index = y as u64 % size;
        let l = ls[index as usize];
        let root = tree.root_at(size).unwrap();
        let proof = tree.inclusion_proof(index, size).unwrap();
        prop_assert_eq!(proof.siblings.len(), levels_for(size));
        prop_assert_eq!(verify_inclusion(root, l, &proof), Ok(()));

        // Every bit of one sibling, one bit of every byte of the others.
        let all_bits = seed as usize % proof.siblings.len().max(1);
        for i in 0..proof.siblings.len() {
            let bits: Vec<usize> =
                if i == all_bits { (0..256).collect() } else { bit_per_byte(seed).collect() };
            for bit in bits {
                let mut bad = proof.clone();
                bad.siblings[i] = flip(bad.siblings[i], bit);
                prop_assert!(verify_inclusion(root, l, &bad).is_err(), "sibling {} bit {}", i, bit);
            }
        }
        for bit in 0..256 {
            prop_assert!(verify_inclusion(root, flip(l, bit), &proof).is_err());
            prop_assert!(verify_inclusion(flip(root, bit), l, &proof).is_err());
        }
        for bit in 0..64 {
            let mut bad = proof.clone();
            bad.index ^= 1 << bit;
            prop_assert!(verify_inclusion(root, l, &bad).is_err(), "index bit {}", bit);
            let mut bad = proof.clone();
            bad.size ^= 1 << bit;
            prop_assert!(verify_inclusion(root, l, &bad).is_err(), "size bit {}", bit);
        }
        // Against the root of a different size (with a proof built for that size's shape).
        let other_size = 1 + (other % ls.len()) as u64;
        if other_size != size && index < other_size {
            let other_root = tree.root_at(other_size).unwrap();
            prop_assert!(verify_inclusion(other_root, l, &proof).is_err());
            let mut resized = proof.clone();
            resized.size = other_size;
            prop_assert!(verify_inclusion(root, l, &resized).is_err());
        }
        // A wrong leaf at this index (any other leaf of the tree that differs).
        if let Some(wrong) = ls.iter().find(|w| **w != l) {
            prop_assert!(verify_inclusion(root, *wrong, &proof).is_err());
        }
    }

    #[test]
    fn prop_extension_verifies_and_tampering_fails(
        ls in arb_leaves(300),
        x in any::<usize>(),
        y in any::<usize>(),
        other in any::<usize>(),
        seed in any::<u64>(),
    ) {
        let tree = MessageTree::from_leaves(ls.clone()).unwrap();
        let (m, n) = sizes(ls.len(), x, y);
        let old = tree.root_at(m).unwrap();
        let new = tree.root_at(n).unwrap();
        let proof = tree.extension_proof(m, n).unwrap();
        let expected_len = if m == 0 || m == n { 0 } else { 1 + levels_for(n) };
        prop_assert_eq!(proof.hashes.len(), expected_len);
        prop_assert_eq!(verify_extension(old, new, &proof), Ok(()));

        // Every bit of one hash, one bit of every byte of the others.
        let all_bits = seed as usize % proof.hashes.len().max(1);
        for i in 0..proof.hashes.len() {
            let bits: Vec<usize> =
                if i == all_bits { (0..256).collect() } else { bit_per_byte(seed).collect() };
            for bit in bits {
                let mut bad = proof.clone();
                bad.hashes[i] = flip(bad.hashes[i], bit);
                prop_assert!(verify_extension(old, new, &bad).is_err(), "hash {} bit {}", i, bit);
            }
        }
        for bit in 0..256 {
            prop_assert!(verify_extension(flip(old, bit), new, &proof).is_err());
            // With old_size == 0 the new root is unconstrained (every tree extends the empty one).
            prop_assert_eq!(verify_extension(old, flip(new, bit), &proof).is_err(), m != 0);
        }
        for bit in 0..64 {
            let mut bad = proof.clone();
            bad.old_size ^= 1 << bit;
            prop_assert!(verify_extension(old, new, &bad).is_err(), "old_size bit {}", bit);
            let mut bad = proof.clone();
            bad.new_size ^= 1 << bit;
            let res = verify_extension(old, new, &bad);
            if m == 0 && bad.new_size <= MAX_LEAVES {
                prop_assert!(res.is_ok());
            } else {
                prop_assert!(res.is_err(), "new_size bit {}", bit);
            }
        }
        // Against the root of a different old size.
        let other_m = (other % (n as usize + 1)) as u64;
        if other_m != m {
            let other_old = tree.root_at(other_m).unwrap();
            prop_assert!(verify_extension(other_old, new, &proof).is_err());
        }
    }

    #[test]
    fn prop_extension_rejects_non_prefix(
        ls in arb_leaves(300).prop_filter("non-empty", |l| !l.is_empty()),
        x in any::<usize>(),
        y in any::<usize>(),
        j in any::<usize>(),
        replacement in arb_leaf(),
    ) {
        let (m, n) = sizes(ls.len(), x, y);
        prop_assume!(m > 0);
        let j = j % m as usize;
        prop_assume!(ls[j] != replacement);
        let a = MessageTree::from_leaves(ls.clone()).unwrap();
        let mut ls_b = ls.clone();
        ls_b[j] = replacement;
        let b = MessageTree::from_leaves(ls_b).unwrap();
        let (a_old, a_new) = (a.root_at(m).unwrap(), a.root_at(n).unwrap());
        let (b_old, b_new) = (b.root_at(m).unwrap(), b.root_at(n).unwrap());
        prop_assert_ne!(a_old, b_old);
        let pa = a.extension_proof(m, n).unwrap();
        let pb = b.extension_proof(m, n).unwrap();
        prop_assert!(verify_extension(b_old, a_new, &pa).is_err());
        prop_assert!(verify_extension(a_old, b_new, &pa).is_err());
        prop_assert!(verify_extension(b_old, a_new, &pb).is_err());
        prop_assert!(verify_extension(a_old, b_new, &pb).is_err());
        // Inclusion of A's leaf j does not verify against B's root.
        let ia = a.inclusion_proof(j as u64, m).unwrap();
        prop_assert!(verify_inclusion(b_old, ls[j], &ia).is_err());
    }

    #[test]
    fn prop_truncate_then_reappend_equals_fresh(
        base in arb_leaves(200),
        dropped in arb_leaves(100),
        added in arb_leaves(100),
    ) {
        let mut tree = MessageTree::from_leaves(base.iter().chain(&dropped).copied()).unwrap();
        tree.truncate(base.len() as u64).unwrap();
        let fresh_base = MessageTree::from_leaves(base.clone()).unwrap();
        prop_assert_eq!(&tree, &fresh_base);
        prop_assert_eq!(tree.root(), naive_root(&base));
        for l in &added {
            tree.append(*l).unwrap();
        }
        let all: Vec<B256> = base.iter().chain(&added).copied().collect();
        let fresh = MessageTree::from_leaves(all.clone()).unwrap();
        prop_assert_eq!(tree.root(), fresh.root());
        prop_assert_eq!(tree.root(), naive_root(&all));
        prop_assert_eq!(&tree, &fresh);
        // Proofs from the reverted-and-extended tree still verify.
        if !all.is_empty() {
            let last = all.len() as u64 - 1;
            let p = tree.inclusion_proof(last, all.len() as u64).unwrap();
            prop_assert_eq!(verify_inclusion(tree.root(), all[last as usize], &p), Ok(()));
        }
    }

    #[test]
    fn prop_verifiers_never_panic(
        index in arb_size(),
        size in arb_size(),
        size2 in arb_size(),
        hashes in prop::collection::vec(
            prop_oneof![Just(B256::ZERO), any::<[u8; 32]>().prop_map(B256::from)], 0..40),
        l in prop_oneof![Just(B256::ZERO), any::<[u8; 32]>().prop_map(B256::from)],
        root in any::<[u8; 32]>().prop_map(B256::from),
        root2 in any::<[u8; 32]>().prop_map(B256::from),
    ) {
        let ip = InclusionProof { index, size, siblings: hashes.clone() };
        let _ = verify_inclusion(root, l, &ip);
        let ep = ExtensionProof { old_size: size, new_size: size2, hashes: hashes.clone() };
        let _ = verify_extension(root, root2, &ep);
        let ep = ExtensionProof { old_size: index, new_size: size, hashes };
        let _ = verify_extension(root, root2, &ep);
    }
}

// ---------------------------------------------------------------------------------------------
// Append witness
// ---------------------------------------------------------------------------------------------

#[test]
fn append_witness_of_the_empty_tree() {
    let w = MessageTree::new().append_witness();
    assert_eq!(w, AppendWitness::empty());
    assert_eq!(w.root(), Ok(empty_root()));
    let new_root = verify_append(empty_root(), &w, leaf(0)).unwrap();
    assert_eq!(new_root, naive_root(&[leaf(0)]));
    assert_eq!(
        verify_append(empty_root(), &w, B256::ZERO),
        Err(MerkleError::ZeroLeaf { index: 0 })
    );
}

#[test]
fn append_witness_sizes_and_errors() {
    for n in [1u64, 2, 3, 7, 8, 31, 32, 33, 100] {
        let tree = MessageTree::from_leaves(leaves(n)).unwrap();
        let w = tree.append_witness();
        assert_eq!(w.size, n);
        assert_eq!(w.left_siblings.len(), n.count_ones() as usize);
        let mut short = w.clone();
        short.left_siblings.pop();
        assert!(matches!(
            short.root(),
            Err(MerkleError::BadProofLength { .. })
        ));
        let mut long = w.clone();
        long.left_siblings.push(leaf(1));
        assert!(matches!(
            long.append(leaf(9)),
            Err(MerkleError::BadProofLength { .. })
        ));
        assert_eq!(long.size, n, "a failed append changes nothing");
    }
    let full = AppendWitness {
        size: MAX_LEAVES,
        left_siblings: vec![leaf(1)],
    };
    assert_eq!(full.root(), Err(MerkleError::TreeFull { len: MAX_LEAVES }));
    let mut over = AppendWitness {
        size: u64::MAX,
        left_siblings: vec![B256::ZERO; 64],
    };
    assert_eq!(
        over.append(leaf(1)),
        Err(MerkleError::TreeFull { len: u64::MAX })
    );
}

#[test]
fn append_witness_at_the_last_slot() {
    // size 2^32 - 1: all 32 siblings are left siblings; the new root is that of a full tree.
    let z = zero_hashes();
    let lefts: Vec<B256> = (0..TREE_DEPTH).map(|h| z[h]).collect();
    let w = AppendWitness {
        size: MAX_LEAVES - 1,
        left_siblings: lefts,
    };
    let old = w.root().unwrap();
    let new = verify_append(old, &w, B256::ZERO).unwrap_err();
    assert_eq!(
        new,
        MerkleError::ZeroLeaf {
            index: MAX_LEAVES - 1
        }
    );
    let mut grown = w.clone();
    assert_eq!(grown.append(leaf(1)), Ok(MAX_LEAVES - 1));
    assert_eq!(grown.size, MAX_LEAVES);
    assert!(matches!(grown.root(), Err(MerkleError::TreeFull { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_append_witness_matches_the_tree(ls in arb_leaves(200), extra in arb_leaves(8)) {
        let mut tree = MessageTree::from_leaves(ls.clone()).unwrap();
        let mut w = tree.append_witness();
        prop_assert_eq!(w.root(), Ok(tree.root()));
        for l in extra {
            let old = tree.root();
            let expected_index = tree.len();
            let new_root = verify_append(old, &w, l).unwrap();
            prop_assert_eq!(w.root_after(l), Ok(new_root));
            tree.append(l).unwrap();
            prop_assert_eq!(new_root, tree.root());
            // stateless append keeps the witness in step with the tree
            prop_assert_eq!(w.append(l), Ok(expected_index));
            prop_assert_eq!(&w, &tree.append_witness());
            prop_assert_eq!(w.root(), Ok(tree.root()));
        }
        let mut all = ls;
        all.extend_from_slice(tree.leaves().get(all.len()..).unwrap_or_default());
        prop_assert_eq!(tree.root(), naive_root(&all));
    }

    #[test]
    fn prop_append_witness_tampering_fails(
        ls in arb_leaves(200).prop_filter("non-empty", |l| !l.is_empty()),
        l in arb_leaf(),
        which in any::<usize>(),
        seed in any::<u64>(),
        other_size in 0u64..400,
    ) {
        let tree = MessageTree::from_leaves(ls.clone()).unwrap();
        let root = tree.root();
        let w = tree.append_witness();
        prop_assert!(verify_append(root, &w, l).is_ok());
        // any flipped bit in any sibling
        if !w.left_siblings.is_empty() {
            let i = which % w.left_siblings.len();
            for bit in bit_per_byte(seed) {
                let mut t = w.clone();
                t.left_siblings[i] = flip(t.left_siblings[i], bit);
                prop_assert!(verify_append(root, &t, l).is_err());
            }
        }
        // a wrong size
        if other_size != w.size {
            let t = AppendWitness { size: other_size, left_siblings: w.left_siblings.clone() };
            prop_assert!(verify_append(root, &t, l).is_err());
        }
        // a wrong old root
        for bit in bit_per_byte(seed) {
            prop_assert!(verify_append(flip(root, bit), &w, l).is_err());
        }
        // the witness of another (prefix) tree
        let prefix = MessageTree::from_leaves(ls[..ls.len() - 1].to_vec()).unwrap();
        prop_assert!(verify_append(root, &prefix.append_witness(), l).is_err());
    }

    #[test]
    fn prop_append_witness_never_panics(
        size in arb_size(),
        hashes in prop::collection::vec(
            prop_oneof![Just(B256::ZERO), any::<[u8; 32]>().prop_map(B256::from)], 0..40),
        l in prop_oneof![Just(B256::ZERO), any::<[u8; 32]>().prop_map(B256::from)],
        root in any::<[u8; 32]>().prop_map(B256::from),
    ) {
        let mut w = AppendWitness { size, left_siblings: hashes };
        let _ = verify_append(root, &w, l);
        let _ = w.root_after(l);
        let before = w.clone();
        if w.append(l).is_err() {
            prop_assert_eq!(w, before);
        }
    }
}
