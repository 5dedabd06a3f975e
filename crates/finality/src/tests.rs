#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::OnceLock;

use alloy_primitives::{keccak256, Address, FixedBytes, B256, U256};
use proptest::prelude::*;

use super::*;
use crate::validator_set::is_quorum_of;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const EPOCH: u64 = 7;
const CHAIN: u64 = 42;
const MAX_KEYS: usize = 16;

/// Deterministic keys, derived once (key generation is a scalar multiplication each).
fn keys() -> &'static [BlsSecretKey] {
    static KEYS: OnceLock<Vec<BlsSecretKey>> = OnceLock::new();
    KEYS.get_or_init(|| (0..MAX_KEYS as u64).map(key).collect())
}

fn key(i: u64) -> BlsSecretKey {
    BlsSecretKey::from_seed(keccak256(i.to_be_bytes()).as_slice()).unwrap()
}

fn set_with_stakes(stakes: &[u64]) -> ValidatorSet {
    ValidatorSet {
        epoch: EPOCH,
        validators: stakes
            .iter()
            .enumerate()
            .map(|(i, &stake)| ValidatorInfo {
                address: Address::with_last_byte(i as u8 + 1),
                pubkey: keys()[i].public_key(),
                stake: U256::from(stake),
            })
            .collect(),
    }
}

fn vote_at(height: u64, block: u8) -> Vote {
    Vote {
        chainId: CHAIN,
        epoch: EPOCH,
        height,
        parentHash: keccak256([block, 0]),
        blockHash: keccak256([block, 1]),
        stateRoot: keccak256([block, 2]),
        accept: true,
    }
}

fn signed(vote: &Vote, validator: u32) -> SignedVote {
    SignedVote {
        vote: vote.clone(),
        validator,
        signature: keys()[validator as usize].sign_vote(vote),
    }
}

/// A certificate signed by exactly `signers` (bitmap built by hand, independently of the crate).
fn qc_signed_by(set: &ValidatorSet, vote: &Vote, signers: &[u32]) -> QuorumCertificate {
    let mut bitmap = vec![0u8; set.validators.len().div_ceil(8)];
    for &i in signers {
        bitmap[i as usize / 8] |= 1 << (i % 8);
    }
    let sigs: Vec<BlsSignature> = signers
        .iter()
        .map(|&i| keys()[i as usize].sign_vote(vote))
        .collect();
    QuorumCertificate {
        vote: vote.clone(),
        signers: bitmap,
        // an empty signer set gets some valid signature; verify must refuse it anyway
        signature: aggregate_signatures(&sigs).unwrap_or_else(|_| any_signature(vote)),
    }
}

fn any_signature(vote: &Vote) -> BlsSignature {
    keys()[0].sign_vote(vote)
}

fn flip_bit<const N: usize>(bytes: FixedBytes<N>, bit: usize) -> FixedBytes<N> {
    let mut out = bytes;
    out.0[bit / 8] ^= 1 << (bit % 8);
    out
}

/// Compressed bytes of a point on the G1 curve that is not in the prime-order subgroup.
fn g1_point_outside_subgroup() -> BlsPublicKey {
    for x in 1u8..=255 {
        let mut bytes = [0u8; 48];
        bytes[0] = 0x80; // compressed flag
        bytes[47] = x;
        if let Ok(pk) = blst::min_pk::PublicKey::uncompress(&bytes) {
            if pk.validate() == Err(blst::BLST_ERROR::BLST_POINT_NOT_IN_GROUP) {
                return BlsPublicKey(FixedBytes(bytes));
            }
        }
    }
    panic!("no small x gives a G1 point outside the subgroup");
}

/// Compressed bytes of a point on the G2 curve that is not in the prime-order subgroup.
fn g2_point_outside_subgroup() -> BlsSignature {
    for x in 1u8..=255 {
        let mut bytes = [0u8; 96];
        bytes[0] = 0x80; // compressed flag; c1 = 0
        bytes[95] = x; // c0 = x
        if let Ok(sig) = blst::min_pk::Signature::uncompress(&bytes) {
            if sig.validate(true) == Err(blst::BLST_ERROR::BLST_POINT_NOT_IN_GROUP) {
                return BlsSignature(FixedBytes(bytes));
            }
        }
    }
    panic!("no small x gives a G2 point outside the subgroup");
}

fn infinity_key() -> BlsPublicKey {
    let mut bytes = [0u8; 48];
    bytes[0] = 0xc0; // compressed + infinity
    BlsPublicKey(FixedBytes(bytes))
}

fn infinity_signature() -> BlsSignature {
    let mut bytes = [0u8; 96];
    bytes[0] = 0xc0;
    BlsSignature(FixedBytes(bytes))
}

// ---------------------------------------------------------------------------------------------
// Keys, signatures, proofs of possession
// ---------------------------------------------------------------------------------------------

#[test]
fn signing_root_is_keccak_of_the_abi_encoding() {
    let vote = vote_at(9, 3);
    let mut encoding = Vec::new();
    for word in [
        U256::from(vote.chainId).to_be_bytes::<32>(),
        U256::from(vote.epoch).to_be_bytes::<32>(),
        U256::from(vote.height).to_be_bytes::<32>(),
        vote.parentHash.0,
        vote.blockHash.0,
        vote.stateRoot.0,
        U256::from(1).to_be_bytes::<32>(),
    ] {
        encoding.extend_from_slice(&word);
    }
    assert_eq!(vote.signing_root(), keccak256(encoding));
}

#[test]
fn secret_keys_need_32_byte_seeds_and_do_not_print() {
    assert_eq!(
        BlsSecretKey::from_seed(&[7; 31]).unwrap_err(),
        FinalityError::InvalidKey("seed shorter than 32 bytes")
    );
    let sk = BlsSecretKey::from_seed(&[7; 32]).unwrap();
    let secret = blst::min_pk::SecretKey::key_gen(&[7; 32], &[]).unwrap();
    let secret_hex = alloy_primitives::hex::encode(secret.to_bytes());
    let debug = format!("{sk:?}");
    assert!(!debug.contains(&secret_hex), "{debug}");
    assert!(debug.contains("public_key"), "{debug}");
    // deterministic
    assert_eq!(
        sk.public_key(),
        BlsSecretKey::from_seed(&[7; 32]).unwrap().public_key()
    );
}

#[test]
fn signatures_verify_only_for_their_key_message_and_tag() {
    let (a, b) = (&keys()[0], &keys()[1]);
    let sig = a.sign(b"hello", VOTE_DST);
    sig.verify(&a.public_key(), b"hello", VOTE_DST).unwrap();
    let bad = Err(FinalityError::InvalidSignature);
    assert_eq!(sig.verify(&b.public_key(), b"hello", VOTE_DST), bad);
    assert_eq!(sig.verify(&a.public_key(), b"hellO", VOTE_DST), bad);
    assert_eq!(sig.verify(&a.public_key(), b"hello", DA_DST), bad);
    assert_eq!(
        infinity_signature().verify(&a.public_key(), b"hello", VOTE_DST),
        bad
    );
    assert_eq!(
        g2_point_outside_subgroup().verify(&a.public_key(), b"hello", VOTE_DST),
        bad
    );
    assert_eq!(
        sig.verify(&infinity_key(), b"hello", VOTE_DST),
        Err(FinalityError::BadPublicKey)
    );
}

#[test]
fn proof_of_possession_verifies_for_its_own_key_only() {
    let (a, b) = (&keys()[0], &keys()[1]);
    a.public_key().verify_pop(&a.proof_of_possession()).unwrap();
    assert_eq!(
        a.public_key().verify_pop(&b.proof_of_possession()),
        Err(FinalityError::InvalidSignature)
    );
    // the same bytes signed under another tag are not a proof of possession
    let wrong_tag = a.sign(a.public_key().0.as_slice(), VOTE_DST);
    assert_eq!(
        a.public_key().verify_pop(&wrong_tag),
        Err(FinalityError::InvalidSignature)
    );
}

#[test]
fn invalid_public_keys_are_errors_not_panics() {
    let pop = keys()[0].proof_of_possession();
    for pk in [
        infinity_key(),
        g1_point_outside_subgroup(),
        BlsPublicKey(FixedBytes([0xff; 48])),
        BlsPublicKey(FixedBytes([0; 48])),
    ] {
        assert_eq!(pk.verify_pop(&pop), Err(FinalityError::BadPublicKey));
    }
}

#[test]
fn aggregating_needs_valid_signatures() {
    assert_eq!(
        aggregate_signatures(&[]),
        Err(FinalityError::EmptyAggregate)
    );
    let good = keys()[0].sign(b"m", VOTE_DST);
    assert_eq!(
        aggregate_signatures(&[good, g2_point_outside_subgroup()]),
        Err(FinalityError::InvalidSignature)
    );
    assert_eq!(
        aggregate_signatures(&[good, BlsSignature(FixedBytes([0xab; 96]))]),
        Err(FinalityError::InvalidSignature)
    );
    assert_eq!(aggregate_signatures(&[good]), Ok(good));
}

// ---------------------------------------------------------------------------------------------
// Validator sets
// ---------------------------------------------------------------------------------------------

#[test]
fn quorum_is_strictly_more_than_two_thirds_without_overflow() {
    let set = set_with_stakes(&[1, 1, 1]);
    assert!(!set.is_quorum(U256::from(2)));
    assert!(set.is_quorum(U256::from(3)));
    let max = U256::MAX;
    // total = MAX: 3s > 2t needs s > floor(2 * MAX / 3)
    let two_thirds = max / U256::from(3) * U256::from(2); // MAX is divisible by 3
    assert!(!is_quorum_of(two_thirds, max));
    assert!(is_quorum_of(two_thirds + U256::from(1), max));
    assert!(is_quorum_of(max, max));
    assert!(!is_quorum_of(U256::ZERO, U256::ZERO));
}

#[test]
fn validator_set_commitment_and_lookup() {
    let set = set_with_stakes(&[5, 6, 7]);
    set.validate().unwrap();
    assert_eq!(set.total_stake(), U256::from(18));
    assert_eq!(set.index_of(&Address::with_last_byte(2)), Some(1));
    assert_eq!(set.index_of(&Address::with_last_byte(9)), None);

    let mut changed = Vec::new();
    let mut s = set.clone();
    s.epoch += 1;
    changed.push(s);
    let mut s = set.clone();
    s.validators[1].stake += U256::from(1);
    changed.push(s);
    let mut s = set.clone();
    s.validators[2].address = Address::with_last_byte(99);
    changed.push(s);
    let mut s = set.clone();
    s.validators[0].pubkey = keys()[9].public_key();
    changed.push(s);
    let mut s = set.clone();
    s.validators.swap(0, 1);
    changed.push(s);
    for other in changed {
        assert_ne!(other.hash(), set.hash(), "{other:?}");
    }
}

#[test]
fn unusable_validator_sets_are_rejected() {
    let good = set_with_stakes(&[5, 6, 7]);
    let mut cases = Vec::new();
    cases.push(ValidatorSet {
        epoch: 1,
        validators: vec![],
    });
    let mut s = good.clone();
    s.validators[1].address = s.validators[0].address;
    cases.push(s);
    let mut s = good.clone();
    s.validators[1].pubkey = s.validators[0].pubkey;
    cases.push(s);
    let mut s = good.clone();
    s.validators[2].stake = U256::ZERO;
    cases.push(s);
    let mut s = good.clone();
    s.validators[0].stake = U256::MAX;
    cases.push(s);
    let mut s = good.clone();
    s.validators[2].pubkey = infinity_key();
    cases.push(s);
    for set in cases {
        assert!(
            matches!(set.validate(), Err(FinalityError::InvalidValidatorSet(_))),
            "{set:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Signed votes and quorum certificates
// ---------------------------------------------------------------------------------------------

#[test]
fn signed_votes_verify_against_their_epoch_and_signer() {
    let set = set_with_stakes(&[1, 1, 1]);
    let vote = vote_at(1, 1);
    let good = signed(&vote, 1);
    good.verify(&set).unwrap();
    good.verify_prepared(&PreparedValidatorSet::new(set.clone()))
        .unwrap();

    let mut wrong_signer = good.clone();
    wrong_signer.validator = 2;
    assert_eq!(
        wrong_signer.verify(&set),
        Err(FinalityError::InvalidSignature)
    );
    let mut unknown = good.clone();
    unknown.validator = 3;
    assert_eq!(
        unknown.verify(&set),
        Err(FinalityError::UnknownValidator(3))
    );
    let mut other_epoch = set.clone();
    other_epoch.epoch = EPOCH + 1;
    assert_eq!(
        good.verify(&other_epoch),
        Err(FinalityError::WrongEpoch {
            expected: EPOCH + 1,
            got: EPOCH
        })
    );
    let mut bad_key = set.clone();
    bad_key.validators[1].pubkey = g1_point_outside_subgroup();
    assert_eq!(
        good.verify(&bad_key),
        Err(FinalityError::BadValidatorKey(1))
    );
    assert_eq!(
        good.verify_prepared(&PreparedValidatorSet::new(bad_key)),
        Err(FinalityError::BadValidatorKey(1))
    );
}

#[test]
fn honest_qc_verifies_and_reports_its_stake() {
    let set = set_with_stakes(&[10, 20, 30, 40, 50]);
    let vote = vote_at(3, 1);
    let qc = qc_signed_by(&set, &vote, &[1, 2, 3, 4]);
    assert_eq!(qc.verify(&set), Ok(U256::from(140)));
    assert_eq!(
        qc.verify_prepared(&PreparedValidatorSet::new(set.clone())),
        Ok(U256::from(140))
    );
    assert_eq!(qc.signer_indices(), vec![1, 2, 3, 4]);
}

#[test]
fn tampering_with_any_part_of_a_qc_fails() {
    let set = set_with_stakes(&[1; 10]);
    let vote = vote_at(3, 1);
    let qc = qc_signed_by(&set, &vote, &[0, 1, 2, 3, 4, 5, 6, 8, 9]);
    qc.verify(&set).unwrap();

    let bad_sig = Err(FinalityError::InvalidSignature);
    let tamper = |f: &dyn Fn(&mut QuorumCertificate)| {
        let mut t = qc.clone();
        f(&mut t);
        t.verify(&set)
    };
    assert_eq!(tamper(&|q| q.vote.chainId += 1), bad_sig);
    assert_eq!(tamper(&|q| q.vote.height += 1), bad_sig);
    assert_eq!(tamper(&|q| q.vote.parentHash = B256::ZERO), bad_sig);
    assert_eq!(tamper(&|q| q.vote.blockHash = B256::ZERO), bad_sig);
    assert_eq!(tamper(&|q| q.vote.stateRoot = B256::ZERO), bad_sig);
    assert_eq!(
        tamper(&|q| q.vote.epoch += 1),
        Err(FinalityError::WrongEpoch {
            expected: EPOCH,
            got: EPOCH + 1
        })
    );
    assert_eq!(
        tamper(&|q| q.vote.accept = false),
        Err(FinalityError::NotAnAccept)
    );
    // adding the missing signer (7) or removing one: still a quorum, wrong key sum
    assert_eq!(tamper(&|q| q.signers[0] ^= 1 << 7), bad_sig);
    assert_eq!(tamper(&|q| q.signers[1] ^= 1), bad_sig);
    // bits beyond the set, or a bitmap of the wrong length
    let malformed = Err(FinalityError::MalformedBitmap {
        bytes: 2,
        members: 10,
    });
    assert_eq!(tamper(&|q| q.signers[1] ^= 1 << 2), malformed);
    assert_eq!(
        tamper(&|q| q.signers.push(0)),
        Err(FinalityError::MalformedBitmap {
            bytes: 3,
            members: 10
        })
    );
    for bit in [0, 5, 100, 383, 767] {
        assert!(tamper(&|q| q.signature = BlsSignature(flip_bit(q.signature.0, bit))).is_err());
    }
    assert_eq!(tamper(&|q| q.signature = infinity_signature()), bad_sig);
    assert_eq!(
        tamper(&|q| q.signature = g2_point_outside_subgroup()),
        bad_sig
    );
}

#[test]
fn quorum_boundary_with_unequal_stakes() {
    // total 300: exactly two thirds is 200
    let set = set_with_stakes(&[200, 99, 1]);
    let vote = vote_at(5, 2);
    assert_eq!(
        qc_signed_by(&set, &vote, &[0]).verify(&set),
        Err(FinalityError::NoQuorum {
            signed: U256::from(200),
            total: U256::from(300)
        })
    );
    assert_eq!(
        qc_signed_by(&set, &vote, &[0, 2]).verify(&set),
        Ok(U256::from(201))
    );
    assert!(matches!(
        qc_signed_by(&set, &vote, &[1, 2]).verify(&set),
        Err(FinalityError::NoQuorum { .. })
    ));
    // total 6, stakes 3/1/1/1: two thirds is 4
    let set = set_with_stakes(&[3, 1, 1, 1]);
    assert!(matches!(
        qc_signed_by(&set, &vote, &[0, 1]).verify(&set),
        Err(FinalityError::NoQuorum { .. })
    ));
    assert_eq!(
        qc_signed_by(&set, &vote, &[0, 1, 3]).verify(&set),
        Ok(U256::from(5))
    );
    assert!(matches!(
        qc_signed_by(&set, &vote, &[]).verify(&set),
        Err(FinalityError::NoQuorum { .. })
    ));
}

#[test]
fn qc_of_another_epoch_or_a_reject_vote_fails() {
    let set = set_with_stakes(&[1, 1, 1]);
    let mut vote = vote_at(1, 1);
    vote.epoch = EPOCH + 1;
    assert_eq!(
        qc_signed_by(&set, &vote, &[0, 1, 2]).verify(&set),
        Err(FinalityError::WrongEpoch {
            expected: EPOCH,
            got: EPOCH + 1
        })
    );
    let mut reject = vote_at(1, 1);
    reject.accept = false;
    assert_eq!(
        qc_signed_by(&set, &reject, &[0, 1, 2]).verify(&set),
        Err(FinalityError::NotAnAccept)
    );
}

#[test]
fn qc_hash_binds_every_field() {
    let set = set_with_stakes(&[1, 1, 1, 1]);
    let qc = qc_signed_by(&set, &vote_at(1, 1), &[0, 1, 2]);
    let mut other = qc.clone();
    other.signers[0] ^= 8;
    assert_ne!(other.hash(), qc.hash());
    let mut other = qc.clone();
    other.vote.height += 1;
    assert_ne!(other.hash(), qc.hash());
    let mut other = qc.clone();
    other.signature = keys()[0].sign_vote(&qc.vote);
    assert_ne!(other.hash(), qc.hash());
}

// ---------------------------------------------------------------------------------------------
// Evidence
// ---------------------------------------------------------------------------------------------

#[test]
fn equivocation_evidence_names_the_offender() {
    let set = set_with_stakes(&[1, 1, 1, 1]);
    let a = signed(&vote_at(4, 1), 2);
    for change in [
        (|v: &mut Vote| v.blockHash = B256::ZERO) as fn(&mut Vote),
        |v| v.parentHash = B256::ZERO,
        |v| v.stateRoot = B256::ZERO,
    ] {
        let mut other = vote_at(4, 1);
        change(&mut other);
        let evidence = Evidence::Equivocation {
            a: a.clone(),
            b: signed(&other, 2),
        };
        assert_eq!(evidence.verify(&set), Ok(2));
    }
}

#[test]
fn non_equivocations_are_rejected() {
    let set = set_with_stakes(&[1, 1, 1, 1]);
    let a = signed(&vote_at(4, 1), 2);
    let reject = |b: SignedVote| Evidence::Equivocation { a: a.clone(), b }.verify(&set);
    assert!(matches!(
        reject(a.clone()),
        Err(FinalityError::NotEquivocation(_))
    ));
    assert!(matches!(
        reject(signed(&vote_at(4, 2), 3)),
        Err(FinalityError::NotEquivocation(_))
    ));
    assert!(matches!(
        reject(signed(&vote_at(5, 2), 2)),
        Err(FinalityError::NotEquivocation(_))
    ));
    let mut other_chain = vote_at(4, 2);
    other_chain.chainId += 1;
    assert!(matches!(
        reject(signed(&other_chain, 2)),
        Err(FinalityError::NotEquivocation(_))
    ));
    // accepting a block and rejecting another (or the same) one at a height is no equivocation
    let mut rejecting = vote_at(4, 1);
    rejecting.accept = false;
    assert!(matches!(
        reject(signed(&rejecting, 2)),
        Err(FinalityError::NotEquivocation(_))
    ));
    // a forged second vote (signed by someone else, claimed as validator 2)
    let mut forged = signed(&vote_at(4, 2), 3);
    forged.validator = 2;
    assert_eq!(reject(forged), Err(FinalityError::InvalidSignature));
}

// ---------------------------------------------------------------------------------------------
// Vote aggregator
// ---------------------------------------------------------------------------------------------

fn certified(outputs: &[AggregatorOutput]) -> Option<&QuorumCertificate> {
    outputs.iter().find_map(|o| match o {
        AggregatorOutput::Certified(qc) => Some(qc),
        AggregatorOutput::Equivocation(_) => None,
    })
}

#[test]
fn aggregator_certifies_once_at_quorum() {
    let set = set_with_stakes(&[1, 1, 1, 1]);
    let mut agg = VoteAggregator::new(set.clone());
    let vote = vote_at(10, 1);
    assert!(agg.add(signed(&vote, 0)).unwrap().is_empty());
    assert!(agg.add(signed(&vote, 0)).unwrap().is_empty()); // duplicate
    assert!(agg.add(signed(&vote, 3)).unwrap().is_empty());
    let outputs = agg.add(signed(&vote, 1)).unwrap();
    let qc = certified(&outputs).unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(qc.vote, vote);
    assert_eq!(qc.signer_indices(), vec![0, 1, 3]);
    assert_eq!(qc.verify(&set), Ok(U256::from(3)));
    // the last vote for a certified block yields nothing
    assert!(agg.add(signed(&vote, 2)).unwrap().is_empty());
}

#[test]
fn aggregator_counts_only_accepting_votes_for_the_exact_vote() {
    let set = set_with_stakes(&[1, 1, 1, 1]);
    let mut agg = VoteAggregator::new(set);
    let vote = vote_at(10, 1);
    let mut reject = vote.clone();
    reject.accept = false;
    assert!(agg.add(signed(&vote, 0)).unwrap().is_empty());
    assert!(agg.add(signed(&vote_at(10, 2), 1)).unwrap().is_empty());
    assert!(agg.add(signed(&reject, 2)).unwrap().is_empty());
    assert!(agg.add(signed(&vote, 3)).unwrap().is_empty());
    // same block at another height is another vote
    assert!(agg.add(signed(&vote_at(11, 1), 1)).unwrap().is_empty());
}

#[test]
fn aggregator_reports_equivocation_once_and_does_not_count_it() {
    let set = set_with_stakes(&[1, 1, 1, 1]);
    let mut agg = VoteAggregator::new(set.clone());
    let (a, b) = (vote_at(10, 1), vote_at(10, 2));
    assert!(agg.add(signed(&a, 0)).unwrap().is_empty());
    assert!(agg.add(signed(&b, 1)).unwrap().is_empty());
    assert!(agg.add(signed(&b, 2)).unwrap().is_empty());
    let outputs = agg.add(signed(&b, 0)).unwrap();
    let [AggregatorOutput::Equivocation(evidence)] = outputs.as_slice() else {
        panic!("{outputs:?}");
    };
    assert_eq!(evidence.verify(&set), Ok(0));
    // reported once, and validator 0's b-vote never counts toward b
    assert!(agg.add(signed(&b, 0)).unwrap().is_empty());
    let mut reject = a.clone();
    reject.accept = false;
    assert!(agg.add(signed(&reject, 0)).unwrap().is_empty());
    let outputs = agg.add(signed(&b, 3)).unwrap();
    assert_eq!(certified(&outputs).unwrap().signer_indices(), vec![1, 2, 3]);
}

#[test]
fn bad_votes_are_errors_and_change_nothing() {
    let set = set_with_stakes(&[1, 1, 1, 1]);
    let mut agg = VoteAggregator::new(set);
    let vote = vote_at(10, 1);
    let mut forged = signed(&vote, 1);
    forged.validator = 0;
    assert_eq!(agg.add(forged), Err(FinalityError::InvalidSignature));
    let mut unknown = signed(&vote, 1);
    unknown.validator = 4;
    assert_eq!(agg.add(unknown), Err(FinalityError::UnknownValidator(4)));
    let mut other_epoch = vote.clone();
    other_epoch.epoch += 1;
    assert!(matches!(
        agg.add(signed(&other_epoch, 0)),
        Err(FinalityError::WrongEpoch { .. })
    ));
    // validator 0's forged vote did not take its slot: its real vote counts
    assert!(agg.add(signed(&vote, 0)).unwrap().is_empty());
    assert!(agg.add(signed(&vote, 1)).unwrap().is_empty());
    assert!(certified(&agg.add(signed(&vote, 2)).unwrap()).is_some());
}

#[test]
fn pruning_forgets_heights_and_frees_vote_slots() {
    let set = set_with_stakes(&[1, 1, 1, 1]);
    let config = AggregatorConfig {
        mode: AggregationMode::LeaderFree,
        max_open_votes_per_validator: 2,
    };
    let mut agg = VoteAggregator::with_config(set, config);
    assert_eq!(agg.config().mode, AggregationMode::LeaderFree);
    agg.add(signed(&vote_at(1, 1), 0)).unwrap();
    agg.add(signed(&vote_at(2, 1), 0)).unwrap();
    assert_eq!(
        agg.add(signed(&vote_at(3, 1), 0)),
        Err(FinalityError::TooManyOpenVotes {
            validator: 0,
            limit: 2
        })
    );
    // other validators have their own quota
    agg.add(signed(&vote_at(3, 1), 1)).unwrap();
    agg.prune(CHAIN, 1);
    assert_eq!(
        agg.add(signed(&vote_at(1, 1), 1)),
        Err(FinalityError::Pruned {
            chain: CHAIN,
            height: 1,
            pruned_through: 1
        })
    );
    agg.add(signed(&vote_at(3, 1), 0)).unwrap();
    // pruning lower again does not un-prune
    agg.prune(CHAIN, 0);
    assert!(matches!(
        agg.add(signed(&vote_at(1, 1), 2)),
        Err(FinalityError::Pruned { .. })
    ));
    // another chain is untouched
    let mut elsewhere = vote_at(1, 1);
    elsewhere.chainId += 1;
    agg.add(signed(&elsewhere, 2)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Slashing protection and the validator signer
// ---------------------------------------------------------------------------------------------

fn signer_refuses_to_equivocate<P: SlashingProtection>(protection: P) {
    let set = set_with_stakes(&[1, 1, 1]);
    let mut signer = ValidatorSigner::new(key(1), 1, protection);
    assert_eq!(signer.index(), 1);
    assert_eq!(signer.public_key(), keys()[1].public_key());
    let vote = vote_at(20, 1);
    let first = signer.vote(vote.clone()).unwrap();
    first.verify(&set).unwrap();
    assert_eq!(signer.vote(vote.clone()).unwrap(), first);
    assert_eq!(
        signer.vote(vote_at(20, 2)),
        Err(FinalityError::WouldEquivocate {
            chain: CHAIN,
            height: 20
        })
    );
    // a reject vote is no equivocation: always signed
    let mut reject = vote_at(20, 2);
    reject.accept = false;
    signer.vote(reject).unwrap();
    signer.vote(vote_at(21, 2)).unwrap();
    let mut elsewhere = vote_at(20, 2);
    elsewhere.chainId += 1;
    signer.vote(elsewhere).unwrap();
}

#[test]
fn memory_signer_refuses_to_equivocate() {
    signer_refuses_to_equivocate(MemorySlashingProtection::new());
}

#[test]
fn redb_signer_refuses_to_equivocate() {
    let dir = tempfile::tempdir().unwrap();
    signer_refuses_to_equivocate(RedbSlashingProtection::open(dir.path().join("sp.redb")).unwrap());
}

#[test]
fn redb_protection_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sp.redb");
    let vote = vote_at(30, 1);
    {
        let mut signer =
            ValidatorSigner::new(key(0), 0, RedbSlashingProtection::open(&path).unwrap());
        signer.vote(vote.clone()).unwrap();
    }
    let protection = RedbSlashingProtection::open(&path).unwrap();
    assert_eq!(
        protection.recorded(CHAIN, 30),
        Ok(Some(vote.signing_root()))
    );
    assert_eq!(protection.recorded(CHAIN, 31), Ok(None));
    let mut signer = ValidatorSigner::new(key(0), 0, protection);
    assert_eq!(
        signer.vote(vote_at(30, 2)),
        Err(FinalityError::WouldEquivocate {
            chain: CHAIN,
            height: 30
        })
    );
    signer.vote(vote).unwrap();
}

#[test]
fn redb_protection_reports_an_unopenable_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-db");
    std::fs::write(
        &path,
        b"this is not a redb file at all, not even close to one",
    )
    .unwrap();
    assert!(matches!(
        RedbSlashingProtection::open(&path),
        Err(FinalityError::Store(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// DA layer and L2 finality
// ---------------------------------------------------------------------------------------------

const DA_KEYS: u64 = 100;

fn da_nodes(n: u32) -> (Vec<DaNode>, DaCommittee) {
    let nodes: Vec<DaNode> = (0..n)
        .map(|i| DaNode::new(key(DA_KEYS + u64::from(i)), i))
        .collect();
    let committee = DaCommittee {
        nodes: nodes.iter().map(DaNode::public_key).collect(),
    };
    (nodes, committee)
}

#[test]
fn availability_needs_more_than_two_thirds_of_da_nodes() {
    let set = set_with_stakes(&[1, 1, 1]);
    let qc = qc_signed_by(&set, &vote_at(1, 1), &[0, 1, 2]);
    let (mut nodes, committee) = da_nodes(4);
    let attestations: Vec<DaAttestation> = nodes.iter_mut().map(|n| n.store(qc.clone())).collect();
    assert_eq!(nodes[3].get(&qc.hash()), Some(&qc));
    assert_eq!(nodes[3].get(&B256::ZERO), None);
    for a in &attestations {
        committee.verify_attestation(a).unwrap();
    }
    assert_eq!(
        committee.certify(&attestations[..2]),
        Err(FinalityError::NoAvailabilityQuorum {
            attested: 2,
            nodes: 4
        })
    );
    // a repeated attestation counts once
    let repeated = [
        attestations[0].clone(),
        attestations[0].clone(),
        attestations[1].clone(),
    ];
    assert!(matches!(
        committee.certify(&repeated),
        Err(FinalityError::NoAvailabilityQuorum { attested: 2, .. })
    ));
    assert_eq!(
        committee.certify(&[]),
        Err(FinalityError::NoAvailabilityQuorum {
            attested: 0,
            nodes: 4
        })
    );
    let cert = committee.certify(&attestations[1..]).unwrap();
    assert_eq!(cert.qc_hash, qc.hash());
    committee.verify(&cert).unwrap();
    committee
        .verify(&committee.certify(&attestations).unwrap())
        .unwrap();

    // tampered certificates
    let mut fewer = cert.clone();
    fewer.signers[0] &= !0b10;
    assert!(matches!(
        committee.verify(&fewer),
        Err(FinalityError::NoAvailabilityQuorum { .. })
    ));
    let mut swapped = cert.clone();
    swapped.signers[0] = 0b0111;
    assert_eq!(
        committee.verify(&swapped),
        Err(FinalityError::InvalidSignature)
    );
    let mut other_qc = cert.clone();
    other_qc.qc_hash = B256::ZERO;
    assert_eq!(
        committee.verify(&other_qc),
        Err(FinalityError::InvalidSignature)
    );
    let mut beyond = cert;
    beyond.signers[0] |= 0b1_0000;
    assert!(matches!(
        committee.verify(&beyond),
        Err(FinalityError::MalformedBitmap { .. })
    ));
}

#[test]
fn bad_da_attestations_are_rejected() {
    let set = set_with_stakes(&[1, 1, 1]);
    let qc = qc_signed_by(&set, &vote_at(1, 1), &[0, 1, 2]);
    let (mut nodes, committee) = da_nodes(4);
    let mut attestations: Vec<DaAttestation> =
        nodes.iter_mut().map(|n| n.store(qc.clone())).collect();

    let mut wrong_node = attestations[0].clone();
    wrong_node.node = 1;
    assert_eq!(
        committee.verify_attestation(&wrong_node),
        Err(FinalityError::InvalidAttestation(1))
    );
    let mut unknown = attestations[0].clone();
    unknown.node = 4;
    assert_eq!(
        committee.verify_attestation(&unknown),
        Err(FinalityError::UnknownDaNode(4))
    );
    // a vote-tagged signature of the same message is not an attestation
    let mut wrong_tag = attestations[0].clone();
    wrong_tag.signature = key(DA_KEYS).sign(availability_message(&qc.hash()).as_slice(), VOTE_DST);
    assert_eq!(
        committee.verify_attestation(&wrong_tag),
        Err(FinalityError::InvalidAttestation(0))
    );

    let other = qc_signed_by(&set, &vote_at(2, 1), &[0, 1, 2]);
    attestations[3] = nodes[3].store(other.clone());
    assert_eq!(
        committee.certify(&attestations),
        Err(FinalityError::AvailabilityMismatch {
            expected: qc.hash(),
            got: other.hash()
        })
    );
    attestations[3] = wrong_node;
    assert_eq!(
        committee.certify(&attestations),
        Err(FinalityError::InvalidAttestation(1))
    );
}

#[test]
fn l2_final_needs_a_valid_qc_and_its_availability() {
    let set = set_with_stakes(&[1, 1, 1, 1]);
    let qc = qc_signed_by(&set, &vote_at(1, 1), &[0, 1, 2]);
    let (mut nodes, committee) = da_nodes(4);
    let certify = |nodes: &mut Vec<DaNode>, qc: &QuorumCertificate| {
        let attestations: Vec<_> = nodes.iter_mut().map(|n| n.store(qc.clone())).collect();
        committee.certify(&attestations).unwrap()
    };
    let avail = certify(&mut nodes, &qc);
    is_l2_final(&qc, &set, &avail, &committee).unwrap();

    let other = qc_signed_by(&set, &vote_at(2, 1), &[0, 1, 2]);
    assert_eq!(
        is_l2_final(&other, &set, &avail, &committee),
        Err(FinalityError::AvailabilityMismatch {
            expected: other.hash(),
            got: qc.hash()
        })
    );
    // available but without a quorum of validators
    let weak = qc_signed_by(&set, &vote_at(1, 1), &[0, 1]);
    let weak_avail = certify(&mut nodes, &weak);
    assert!(matches!(
        is_l2_final(&weak, &set, &weak_avail, &committee),
        Err(FinalityError::NoQuorum { .. })
    ));
    // a certificate from a committee that is not the expected one
    let (_, other_committee) = da_nodes(3);
    assert!(is_l2_final(&qc, &set, &avail, &other_committee).is_err());
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

fn stakes_and_mask() -> impl Strategy<Value = (Vec<u64>, u16)> {
    (proptest::collection::vec(1u64..=1000, 1..=10), any::<u16>())
}

fn subset(mask: u16, n: usize) -> Vec<u32> {
    (0..n as u32).filter(|i| mask & (1 << i) != 0).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A QC over a random subset of a random-stake set verifies iff the subset's stake is more
    /// than two thirds (reference computed in u128).
    #[test]
    fn qc_verifies_iff_signers_are_a_quorum((stakes, mask) in stakes_and_mask()) {
        let set = set_with_stakes(&stakes);
        let signers = subset(mask, stakes.len());
        let stake: u128 = signers.iter().map(|&i| u128::from(stakes[i as usize])).sum();
        let total: u128 = stakes.iter().map(|&s| u128::from(s)).sum();
        let result = qc_signed_by(&set, &vote_at(1, 1), &signers).verify(&set);
        if 3 * stake > 2 * total {
            prop_assert_eq!(result, Ok(U256::from(stake)));
        } else {
            prop_assert_eq!(
                result,
                Err(FinalityError::NoQuorum { signed: U256::from(stake), total: U256::from(total) })
            );
        }
    }

    /// Flipping any one bit of a valid QC's bitmap or signature makes it fail.
    #[test]
    fn flipping_one_bit_of_bitmap_or_signature_fails(
        (stakes, mask) in stakes_and_mask(),
        bit_seed in any::<usize>(),
    ) {
        let set = set_with_stakes(&stakes);
        // grow the random subset until it is a quorum
        let mut signers = subset(mask, stakes.len());
        for i in 0..stakes.len() as u32 {
            let stake: u64 = signers.iter().map(|&j| stakes[j as usize]).sum();
            if set.is_quorum(U256::from(stake)) {
                break;
            }
            if !signers.contains(&i) {
                signers.push(i);
            }
        }
        signers.sort_unstable();
        let qc = qc_signed_by(&set, &vote_at(1, 1), &signers);
        prop_assert!(qc.verify(&set).is_ok());
        let bitmap_bits = qc.signers.len() * 8;
        let bit = bit_seed % (bitmap_bits + 96 * 8);
        let mut tampered = qc.clone();
        if bit < bitmap_bits {
            tampered.signers[bit / 8] ^= 1 << (bit % 8);
        } else {
            tampered.signature = BlsSignature(flip_bit(qc.signature.0, bit - bitmap_bits));
        }
        prop_assert!(tampered.verify(&set).is_err(), "bit {}", bit);
    }
}

proptest! {
    #[test]
    fn quorum_matches_the_u128_reference(stake in any::<u64>(), total in any::<u64>()) {
        prop_assert_eq!(
            is_quorum_of(U256::from(stake), U256::from(total)),
            3 * u128::from(stake) > 2 * u128::from(total)
        );
    }

    #[test]
    fn bitmaps_round_trip(members in 0usize..40, mask in any::<u64>()) {
        let indices: Vec<u32> = (0..members as u32).filter(|i| mask & (1 << i) != 0).collect();
        let encoded = bitmap::encode(indices.iter().copied(), members);
        prop_assert_eq!(encoded.len(), members.div_ceil(8));
        prop_assert_eq!(bitmap::decode(&encoded, members), Ok(indices));
    }
}
