//! Quorum-certificate verification: one fast aggregate verification (sum the signers' public
//! keys, one signature check) versus `n` single verifications of the individual votes, for
//! `n` = 100, 1 000 and 10 000 validators that all signed, with one raw BLS signature check (two
//! Miller loops and a final exponentiation) as the physical reference. Run with
//! `cargo bench -p braid-finality --bench qc`.
//!
//! Everything (keys, votes, signatures, the certificate, decoded keys) is prepared outside the
//! timed part.

#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use alloy_primitives::{keccak256, Address, U256};
use braid_finality::{
    aggregate_signatures, BlsSecretKey, PreparedValidatorSet, QuorumCertificate, SignedVote,
    ValidatorInfo, ValidatorSet, Vote, VOTE_DST,
};
use divan::{black_box, counter::ItemsCount, Bencher};

fn main() {
    divan::main();
}

const SIZES: [usize; 3] = [100, 1_000, 10_000];

struct Fixture {
    set: ValidatorSet,
    prepared: PreparedValidatorSet,
    votes: Vec<SignedVote>,
    qc: QuorumCertificate,
}

fn fixture(n: usize) -> &'static Fixture {
    static FIXTURES: [OnceLock<Fixture>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = SIZES.iter().position(|&s| s == n).unwrap();
    FIXTURES[slot].get_or_init(|| build(n))
}

fn build(n: usize) -> Fixture {
    let keys: Vec<BlsSecretKey> = (0..n as u64)
        .map(|i| BlsSecretKey::from_seed(keccak256(i.to_be_bytes()).as_slice()).unwrap())
        .collect();
    let set = ValidatorSet {
        epoch: 1,
        validators: keys
            .iter()
            .enumerate()
            .map(|(i, k)| ValidatorInfo {
                address: Address::left_padding_from(&(i as u64).to_be_bytes()),
                pubkey: k.public_key(),
                stake: U256::from(1_000 + i),
            })
            .collect(),
    };
    let vote = Vote {
        chainId: 1,
        epoch: 1,
        height: 1_000,
        parentHash: keccak256(b"parent"),
        blockHash: keccak256(b"block"),
        stateRoot: keccak256(b"state"),
        accept: true,
    };
    let votes: Vec<SignedVote> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| SignedVote {
            vote: vote.clone(),
            validator: i as u32,
            signature: k.sign_vote(&vote),
        })
        .collect();
    let signatures: Vec<_> = votes.iter().map(|v| v.signature).collect();
    let mut signers = vec![0u8; n.div_ceil(8)];
    for i in 0..n {
        signers[i / 8] |= 1 << (i % 8);
    }
    let qc = QuorumCertificate {
        vote,
        signers,
        signature: aggregate_signatures(&signatures).unwrap(),
    };
    let prepared = PreparedValidatorSet::new(set.clone());
    qc.verify_prepared(&prepared).unwrap();
    Fixture {
        set,
        prepared,
        votes,
        qc,
    }
}

/// The QC check as the SL or a light client does it once per epoch's keys are decoded: bitmap,
/// stake sum, `n` G1 additions, one signature check (counter: signers).
#[divan::bench(args = SIZES, sample_count = 20, sample_size = 1)]
fn qc_fast_aggregate_verify(bencher: Bencher, n: usize) {
    let f = fixture(n);
    bencher.counter(ItemsCount::new(n)).bench_local(|| {
        black_box(&f.qc)
            .verify_prepared(black_box(&f.prepared))
            .unwrap()
    });
}

/// The same check from the raw set: also decompresses and subgroup-checks each signer's key.
#[divan::bench(args = SIZES, sample_count = 10, sample_size = 1)]
fn qc_fast_aggregate_verify_decoding_keys(bencher: Bencher, n: usize) {
    let f = fixture(n);
    bencher
        .counter(ItemsCount::new(n))
        .bench_local(|| black_box(&f.qc).verify(black_box(&f.set)).unwrap());
}

/// A "list of votes" certificate: each validator's own signature of the same vote checked
/// separately (signature decoding and subgroup check + one signature check each; keys
/// pre-decoded as above).
#[divan::bench(args = SIZES, sample_count = 3, sample_size = 1)]
fn n_single_verifications(bencher: Bencher, n: usize) {
    let f = fixture(n);
    bencher.counter(ItemsCount::new(n)).bench_local(|| {
        for vote in black_box(&f.votes) {
            vote.verify_prepared(&f.prepared).unwrap();
        }
    });
}

fn decoded_keys(f: &Fixture) -> Vec<blst::min_pk::PublicKey> {
    f.set
        .validators
        .iter()
        .map(|v| blst::min_pk::PublicKey::key_validate(v.pubkey.0.as_slice()).unwrap())
        .collect()
}

/// Summing `n` decoded public keys as the crate does (blst's batched affine addition, on its
/// thread pool from 384 keys on): the part of the fast check that grows with `n`.
#[divan::bench(args = SIZES, sample_count = 20, sample_size = 1)]
fn pubkey_aggregation_batched(bencher: Bencher, n: usize) {
    use blst::MultiPoint;
    let keys = decoded_keys(fixture(n));
    bencher
        .counter(ItemsCount::new(n))
        .bench_local(|| black_box(keys.as_slice()).add().to_public_key());
}

/// The same sum one mixed addition at a time (`AggregatePublicKey::aggregate`, one thread).
#[divan::bench(args = SIZES, sample_count = 20, sample_size = 1)]
fn pubkey_aggregation_sequential(bencher: Bencher, n: usize) {
    let keys = decoded_keys(fixture(n));
    let refs: Vec<&blst::min_pk::PublicKey> = keys.iter().collect();
    bencher.counter(ItemsCount::new(n)).bench_local(|| {
        blst::min_pk::AggregatePublicKey::aggregate(black_box(&refs), false)
            .unwrap()
            .to_public_key()
    });
}

/// One raw BLS signature check with blst, key and signature already decoded (hash-to-curve of
/// the message, two Miller loops, one final exponentiation): the physical reference.
#[divan::bench(sample_count = 100)]
fn raw_bls_verify(bencher: Bencher) {
    let f = fixture(SIZES[0]);
    let vote = &f.votes[0];
    let pk =
        blst::min_pk::PublicKey::key_validate(f.set.validators[0].pubkey.0.as_slice()).unwrap();
    let sig = blst::min_pk::Signature::sig_validate(vote.signature.0.as_slice(), true).unwrap();
    let msg = vote.vote.signing_root();
    bencher.bench_local(|| {
        assert_eq!(
            black_box(&sig).verify(false, msg.as_slice(), VOTE_DST, &[], black_box(&pk), false),
            blst::BLST_ERROR::BLST_SUCCESS
        );
    });
}
