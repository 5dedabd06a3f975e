//! Known-answer vectors from an independent BLS implementation: `vectors/bls.json`, made by
//! `vectors/generate.py` with py_ecc (pure Python; see the script for the command). Braid's BLS
//! code (over blst) must derive the same keys, produce the same signatures, proofs of possession
//! and aggregates, and agree with py_ecc on every verification — valid or not — with a typed
//! error for every rejection. Vectors cover the standard Ethereum ciphersuite
//! `BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_` and braid's own tags (`VOTE_DST`, `DA_DST`,
//! `POP_DST`: same scheme, other DSTs).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use alloy_primitives::{hex, Address, FixedBytes, B256, U256};
use braid_finality::{
    aggregate_signatures, BlsPublicKey, BlsSecretKey, BlsSignature, FinalityError,
    QuorumCertificate, ValidatorInfo, ValidatorSet, Vote, DA_DST, POP_DST, VOTE_DST,
};
use serde_json::Value;

const VECTORS: &str = include_str!("../vectors/bls.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("bls.json is JSON")
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("a hex string")).expect("valid hex")
}

fn pk(v: &Value) -> BlsPublicKey {
    BlsPublicKey(FixedBytes::from_slice(&bytes(v)))
}

fn sig(v: &Value) -> BlsSignature {
    BlsSignature(FixedBytes::from_slice(&bytes(v)))
}

fn list(v: &Value) -> &Vec<Value> {
    v.as_array().expect("a list")
}

/// The DST of a suite named in the vectors, checked against braid's constants.
fn dst(all: &Value, suite: &str) -> Vec<u8> {
    let d = all["dsts"][suite]
        .as_str()
        .expect("a known suite")
        .as_bytes();
    match suite {
        "braid_vote" => assert_eq!(d, VOTE_DST),
        "braid_da" => assert_eq!(d, DA_DST),
        other => assert_eq!(other.as_bytes(), d),
    }
    d.to_vec()
}

fn key(ikm: &Value) -> BlsSecretKey {
    BlsSecretKey::from_seed(&bytes(ikm)).expect("a 32-byte seed")
}

/// The error braid must give for an invalid case, by what the case breaks (`None`: valid).
fn expected_error(case: &str) -> Option<FinalityError> {
    if case.starts_with("valid") {
        None
    } else if case.starts_with("public key")
        || case.contains("infinity public key")
        || case.contains("key not in subgroup")
    {
        Some(FinalityError::BadPublicKey)
    } else {
        Some(FinalityError::InvalidSignature)
    }
}

#[test]
fn the_vectors_are_the_generated_ones() {
    let v = vectors();
    assert_eq!(v["generator"], "py_ecc 8.0.0");
    assert_eq!(v["pop_dst"].as_str().unwrap().as_bytes(), POP_DST);
    // every section is there and not empty
    for section in [
        "keygen",
        "sign",
        "pop",
        "verify",
        "aggregate",
        "fast_aggregate_verify",
    ] {
        assert!(!list(&v[section]).is_empty(), "{section}");
    }
}

#[test]
fn keys_derive_as_the_ietf_keygen() {
    let v = vectors();
    for k in list(&v["keygen"]) {
        assert_eq!(key(&k["ikm"]).public_key(), pk(&k["pk"]), "{k}");
    }
}

#[test]
fn signatures_are_the_known_answers_and_verify() {
    let v = vectors();
    let mut suites = std::collections::BTreeSet::new();
    for s in list(&v["sign"]) {
        let suite = s["suite"].as_str().unwrap();
        suites.insert(suite.to_string());
        let dst = dst(&v, suite);
        let sk = key(&s["ikm"]);
        let msg = bytes(&s["msg"]);
        let got = sk.sign(&msg, &dst);
        assert_eq!(got, sig(&s["sig"]), "{s}");
        assert_eq!(got.verify(&sk.public_key(), &msg, &dst), Ok(()), "{s}");
    }
    assert_eq!(suites.len(), 3, "the standard suite and braid's two tags");
}

#[test]
fn proofs_of_possession_are_the_known_answers_under_braids_tag() {
    let v = vectors();
    let standard_pop_tag = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
    for p in list(&v["pop"]) {
        let sk = key(&p["ikm"]);
        let public = pk(&p["pk"]);
        assert_eq!(sk.public_key(), public);
        assert_eq!(sk.proof_of_possession(), sig(&p["pop_braid"]), "{p}");
        assert_eq!(public.verify_pop(&sig(&p["pop_braid"])), Ok(()));
        // the standard suite's proof is another tag's signature: not a braid proof
        let standard = sig(&p["pop_standard"]);
        assert_eq!(
            public.verify_pop(&standard),
            Err(FinalityError::InvalidSignature)
        );
        assert_eq!(
            standard.verify(&public, public.0.as_slice(), standard_pop_tag),
            Ok(())
        );
    }
    // keys that are no keys have no proof of possession
    let points = &v["points"];
    let pop = sig(&list(&v["pop"])[0]["pop_braid"]);
    for bad in ["g1_infinity", "g1_not_in_subgroup", "g1_not_on_curve"] {
        assert_eq!(
            pk(&points[bad]).verify_pop(&pop),
            Err(FinalityError::BadPublicKey),
            "{bad}"
        );
    }
}

#[test]
fn verification_agrees_with_the_independent_implementation() {
    let v = vectors();
    let cases = list(&v["verify"]);
    for c in cases {
        let case = c["case"].as_str().unwrap();
        let dst = dst(&v, c["suite"].as_str().unwrap());
        let got = sig(&c["sig"]).verify(&pk(&c["pk"]), &bytes(&c["msg"]), &dst);
        assert_eq!(
            got.is_ok(),
            c["valid"].as_bool().unwrap(),
            "{case}: {got:?}"
        );
        match expected_error(case) {
            None => assert_eq!(got, Ok(()), "{case}"),
            // a bad signature is decoded first: with both bad, the signature is reported
            Some(_) if case == "infinity key and signature" => {
                assert_eq!(got, Err(FinalityError::InvalidSignature))
            }
            Some(e) => assert_eq!(got, Err(e), "{case}"),
        }
    }
    for must in [
        "infinity public key",
        "infinity signature",
        "public key not in subgroup",
        "signature not in subgroup",
    ] {
        assert!(cases.iter().any(|c| c["case"] == must), "{must}");
    }
}

#[test]
fn aggregates_are_the_known_answers_and_bad_inputs_are_refused() {
    let v = vectors();
    let mut seen = 0;
    for c in list(&v["aggregate"]) {
        let case = c["case"].as_str().unwrap();
        let inputs: Vec<BlsSignature> = list(&c["sigs"]).iter().map(sig).collect();
        let got = aggregate_signatures(&inputs);
        match case {
            "empty" => {
                assert!(c["aggregate"].is_null(), "py_ecc refuses it too");
                assert_eq!(got, Err(FinalityError::EmptyAggregate));
            }
            // braid decodes every input with its group checks before adding: stricter than
            // py_ecc's Aggregate (which only decompresses), by design (`bls.rs`)
            "with the infinity signature" | "with a signature not in subgroup" => {
                assert!(!c["aggregate"].is_null());
                assert_eq!(got, Err(FinalityError::InvalidSignature), "{case}");
            }
            _ => assert_eq!(got, Ok(sig(&c["aggregate"])), "{case}"),
        }
        seen += 1;
    }
    assert_eq!(seen, 6);
}

#[test]
fn fast_aggregate_verification_agrees_with_the_independent_implementation() {
    let v = vectors();
    let cases = list(&v["fast_aggregate_verify"]);
    for c in cases {
        let case = c["case"].as_str().unwrap();
        let dst = dst(&v, c["suite"].as_str().unwrap());
        let keys: Vec<BlsPublicKey> = list(&c["pks"]).iter().map(pk).collect();
        let got = sig(&c["sig"]).fast_aggregate_verify(&keys, &bytes(&c["msg"]), &dst);
        assert_eq!(
            got.is_ok(),
            c["valid"].as_bool().unwrap(),
            "{case}: {got:?}"
        );
        match expected_error(case) {
            None => assert_eq!(got, Ok(()), "{case}"),
            Some(e) => assert_eq!(got, Err(e), "{case}"),
        }
    }
    for must in [
        "no keys",
        "no keys and the infinity signature",
        "with the infinity public key",
        "with a key not in subgroup",
        "infinity signature",
    ] {
        assert!(cases.iter().any(|c| c["case"] == must), "{must}");
    }
}

/// The vote of the `qc` vectors; its signing root is the message py_ecc signed.
fn qc_vote() -> Vote {
    Vote {
        chainId: 901,
        epoch: 3,
        height: 7,
        parentHash: B256::repeat_byte(0x11),
        blockHash: B256::repeat_byte(0x22),
        stateRoot: B256::repeat_byte(0x33),
        accept: true,
    }
}

fn qc_set(v: &Value) -> ValidatorSet {
    ValidatorSet {
        epoch: 3,
        validators: list(&v["keygen"])
            .iter()
            .enumerate()
            .map(|(i, k)| ValidatorInfo {
                address: Address::repeat_byte(i as u8 + 1),
                pubkey: pk(&k["pk"]),
                stake: U256::from(100u64),
            })
            .collect(),
    }
}

#[test]
fn quorum_certificates_from_independent_signatures_verify() {
    let v = vectors();
    let q = &v["qc"];
    let vote = qc_vote();
    assert_eq!(
        vote.signing_root().as_slice(),
        bytes(&q["signing_root"]).as_slice()
    );
    let set = qc_set(&v);
    for c in list(&q["cases"]) {
        let case = c["case"].as_str().unwrap();
        let qc = QuorumCertificate {
            vote: vote.clone(),
            signers: bytes(&c["signers"]),
            signature: sig(&c["sig"]),
        };
        let got = qc.verify(&set);
        match case {
            "three of four signed" => assert_eq!(got, Ok(U256::from(300u64)), "{case}"),
            "bitmap names a non-signer" | "infinity signature" => {
                assert_eq!(got, Err(FinalityError::InvalidSignature), "{case}")
            }
            "two of four signed" => assert!(
                matches!(got, Err(FinalityError::NoQuorum { .. })),
                "{case}: {got:?}"
            ),
            other => panic!("unknown case {other}"),
        }
    }
    // a set whose signer has the infinity key: a typed error, not a panic
    let mut bad = set.clone();
    bad.validators[1].pubkey = pk(&v["points"]["g1_infinity"]);
    let good = &list(&q["cases"])[0];
    let qc = QuorumCertificate {
        vote,
        signers: bytes(&good["signers"]),
        signature: sig(&good["sig"]),
    };
    assert_eq!(qc.verify(&bad), Err(FinalityError::BadValidatorKey(1)));
}
