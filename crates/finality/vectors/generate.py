#!/usr/bin/env python3
"""Known-answer vectors for braid-finality's BLS code, from an independent implementation.

Generated with py_ecc (pure Python, the Ethereum Foundation's reference BLS12-381 code; no blst):

    pip3 install py_ecc==8.0.0
    python3 crates/finality/vectors/generate.py > crates/finality/vectors/bls.json

`crates/finality/tests/bls_vectors.rs` checks braid against the output. Scheme: minimal public
key (keys in G1, 48 bytes; signatures in G2, 96 bytes), hash to G2 with
`expand_message_xmd(SHA-256)` and the SSWU map, proof-of-possession scheme. Vectors are made for
the standard ciphersuite `BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_` (py_ecc's
`G2ProofOfPossession`, the Ethereum consensus scheme) and for braid's own domain separation tags
(`VOTE_DST`, `DA_DST` for signatures and `POP_DST` for proofs of possession, see
`crates/finality/src/lib.rs`): the same scheme with another DST, made with a subclass of
`G2ProofOfPossession` that only overrides `DST` and `POP_TAG`.

Secret keys come from the IETF `KeyGen` (HKDF-SHA-256, empty `key_info`) of fixed 32-byte seeds,
as braid derives them (`BlsSecretKey::from_seed`). Every expected outcome (valid or not) is what
py_ecc computes, never assumed; the script asserts the invalid inputs really are what their name
says (infinity, off the subgroup, off the curve).

The output is deterministic: running the script again gives the same file.
"""

import hashlib
import json
import sys

from py_ecc.bls import G2ProofOfPossession
from py_ecc.bls.g2_primitives import (
    G1_to_pubkey,
    G2_to_signature,
    pubkey_to_G1,
    signature_to_G2,
    subgroup_check,
)
from py_ecc.bls.hash_to_curve import (
    hash_to_field_FQ,
    hash_to_field_FQ2,
    map_to_curve_G1,
    map_to_curve_G2,
)
from py_ecc.optimized_bls12_381 import is_on_curve, b, b2, normalize

# Braid's tags (crates/finality/src/lib.rs).
VOTE_DST = b"BRAID_VOTE_V1_BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
POP_DST = b"BRAID_POP_V1_BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
DA_DST = b"BRAID_DA_V1_BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"


class BraidVote(G2ProofOfPossession):
    """G2ProofOfPossession with braid's vote DST and proof-of-possession tag."""

    DST = VOTE_DST
    POP_TAG = POP_DST


class BraidDa(G2ProofOfPossession):
    """G2ProofOfPossession with braid's DA attestation DST."""

    DST = DA_DST
    POP_TAG = POP_DST


SUITES = [
    ("BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_", G2ProofOfPossession),
    ("braid_vote", BraidVote),
    ("braid_da", BraidDa),
]

# `Vote::signing_root()` of the vote `qc_vote()` in crates/finality/tests/bls_vectors.rs.
QC_SIGNING_ROOT = "f05e52e2ef2410e5b7fad926aa935d46a979f3e96625269602ef73d8bbd576ec"

# Compressed points at infinity: the compression and infinity flags set, everything else zero.
G1_INFINITY = bytes([0xC0]) + bytes(47)
G2_INFINITY = bytes([0xC0]) + bytes(95)


def seed(i):
    """The i-th 32-byte key seed."""
    return hashlib.sha256(b"braid bls vector seed %d" % i).digest()


def hx(data):
    return "0x" + bytes(data).hex()


def g1_not_in_subgroup():
    """A compressed G1 point on the curve but outside the prime-order subgroup."""
    u = hash_to_field_FQ(b"braid: off the G1 subgroup", 1, b"BRAID_VECTORS", hashlib.sha256)[0]
    p = map_to_curve_G1(u)
    assert is_on_curve(p, b) and not subgroup_check(p)
    return G1_to_pubkey(p)


def g2_not_in_subgroup():
    """A compressed G2 point on the curve but outside the prime-order subgroup."""
    u = hash_to_field_FQ2(b"braid: off the G2 subgroup", 1, b"BRAID_VECTORS", hashlib.sha256)[0]
    p = map_to_curve_G2(u)
    assert is_on_curve(p, b2) and not subgroup_check(p)
    return G2_to_signature(p)


def g1_not_on_curve():
    """48 bytes with the compression flag whose x has no point on the curve."""
    for x in range(1, 1000):
        data = bytes([0x80]) + bytes(39) + x.to_bytes(8, "big")
        try:
            pubkey_to_G1(data)
        except (ValueError, AssertionError):
            return data
    raise AssertionError("no x off the curve found")


def g2_not_on_curve():
    """96 bytes with the compression flag whose x has no point on the curve."""
    for x in range(1, 1000):
        data = bytes([0x80]) + bytes(87) + x.to_bytes(8, "big")
        try:
            signature_to_G2(data)
        except (ValueError, AssertionError):
            return data
    raise AssertionError("no x off the curve found")


def main():
    keys = []
    for i in range(4):
        ikm = seed(i)
        sk = G2ProofOfPossession.KeyGen(ikm)
        keys.append((ikm, sk, G2ProofOfPossession.SkToPk(sk)))
    messages = [b"", b"abc", bytes(32), hashlib.sha256(b"braid vote").digest()]

    out = {
        "generator": "py_ecc " + __import__("importlib.metadata").metadata.version("py_ecc"),
        "script": "crates/finality/vectors/generate.py",
        "dsts": {name: suite.DST.decode() for name, suite in SUITES},
        "pop_dst": POP_DST.decode(),
        "keygen": [
            {"ikm": hx(ikm), "sk": hx(sk.to_bytes(32, "big")), "pk": hx(pk)}
            for ikm, sk, pk in keys
        ],
    }

    # sign: (key, message) -> signature, per suite
    sign = []
    sigs = {}
    for name, suite in SUITES:
        for k, (ikm, sk, pk) in enumerate(keys):
            for m, msg in enumerate(messages):
                if name != SUITES[0][0] and m not in (1, 3):
                    continue  # braid's tags: two messages per key suffice
                sig = suite.Sign(sk, msg)
                sigs[(name, k, m)] = sig
                sign.append({"suite": name, "ikm": hx(ikm), "msg": hx(msg), "sig": hx(sig)})
    out["sign"] = sign

    # proofs of possession under braid's tag, and the standard one
    out["pop"] = [
        {
            "ikm": hx(ikm),
            "pk": hx(pk),
            "pop_braid": hx(BraidVote.PopProve(sk)),
            "pop_standard": hx(G2ProofOfPossession.PopProve(sk)),
        }
        for ikm, sk, pk in keys
    ]

    bad_g1 = g1_not_in_subgroup()
    bad_g2 = g2_not_in_subgroup()
    off_g1 = g1_not_on_curve()
    off_g2 = g2_not_on_curve()
    out["points"] = {
        "g1_infinity": hx(G1_INFINITY),
        "g2_infinity": hx(G2_INFINITY),
        "g1_not_in_subgroup": hx(bad_g1),
        "g2_not_in_subgroup": hx(bad_g2),
        "g1_not_on_curve": hx(off_g1),
        "g2_not_on_curve": hx(off_g2),
    }

    # verify: valid and invalid cases; `valid` is py_ecc's answer
    std_name, std = SUITES[0]
    pk0, pk1 = keys[0][2], keys[1][2]
    s = sigs[(std_name, 0, 1)]
    flipped = bytearray(s)
    flipped[-1] ^= 1
    cases = [
        ("valid", std_name, pk0, messages[1], s),
        ("valid empty message", std_name, pk0, messages[0], sigs[(std_name, 0, 0)]),
        ("valid braid vote tag", "braid_vote", pk1, messages[3], sigs[("braid_vote", 1, 3)]),
        ("valid braid da tag", "braid_da", pk1, messages[1], sigs[("braid_da", 1, 1)]),
        ("wrong message", std_name, pk0, messages[2], s),
        ("wrong key", std_name, pk1, messages[1], s),
        ("wrong tag", "braid_vote", pk0, messages[1], s),
        ("tampered signature", std_name, pk0, messages[1], bytes(flipped)),
        ("infinity public key", std_name, G1_INFINITY, messages[1], s),
        ("infinity signature", std_name, pk0, messages[1], G2_INFINITY),
        ("infinity key and signature", std_name, G1_INFINITY, messages[1], G2_INFINITY),
        ("public key not in subgroup", std_name, bad_g1, messages[1], s),
        ("signature not in subgroup", std_name, pk0, messages[1], bad_g2),
        ("public key not on curve", std_name, off_g1, messages[1], s),
        ("signature not on curve", std_name, pk0, messages[1], off_g2),
    ]
    suites = dict(SUITES)
    verify = []
    for case, name, pk, msg, sig in cases:
        valid = suites[name].Verify(pk, msg, sig)
        assert valid == case.startswith("valid"), case
        verify.append(
            {"case": case, "suite": name, "pk": hx(pk), "msg": hx(msg), "sig": hx(sig), "valid": valid}
        )
    out["verify"] = verify

    # aggregate: signatures -> aggregate (null: py_ecc refuses)
    def aggregate(case, inputs):
        try:
            agg = hx(G2ProofOfPossession.Aggregate(inputs))
        except Exception:  # noqa: BLE001 - py_ecc raises ValidationError or ValueError
            agg = None
        return {"case": case, "sigs": [hx(x) for x in inputs], "aggregate": agg}

    same = [sigs[(std_name, k, 1)] for k in range(4)]
    mixed = [sigs[(std_name, k, k)] for k in range(4)]
    out["aggregate"] = [
        aggregate("one signature", same[:1]),
        aggregate("four signatures of one message", same),
        aggregate("four signatures of different messages", mixed),
        aggregate("empty", []),
        aggregate("with the infinity signature", same[:2] + [G2_INFINITY]),
        aggregate("with a signature not in subgroup", same[:2] + [bad_g2]),
    ]
    assert out["aggregate"][3]["aggregate"] is None

    # fast aggregate verify: keys that all signed one message
    agg_same = G2ProofOfPossession.Aggregate(same)
    pks = [k[2] for k in keys]
    fav_cases = [
        ("valid four keys", std_name, pks, messages[1], agg_same),
        ("valid one key", std_name, pks[:1], messages[1], same[0]),
        (
            "valid braid vote tag",
            "braid_vote",
            pks[:3],
            messages[3],
            G2ProofOfPossession.Aggregate([sigs[("braid_vote", k, 3)] for k in range(3)]),
        ),
        ("wrong message", std_name, pks, messages[2], agg_same),
        ("a key missing", std_name, pks[:3], messages[1], agg_same),
        ("a key repeated instead of another", std_name, pks[:3] + pks[:1], messages[1], agg_same),
        ("no keys", std_name, [], messages[1], agg_same),
        ("no keys and the infinity signature", std_name, [], messages[1], G2_INFINITY),
        ("with the infinity public key", std_name, pks + [G1_INFINITY], messages[1], agg_same),
        ("with a key not in subgroup", std_name, pks[:3] + [bad_g1], messages[1], agg_same),
        ("infinity signature", std_name, pks, messages[1], G2_INFINITY),
        ("signature not in subgroup", std_name, pks, messages[1], bad_g2),
    ]
    fav = []
    for case, name, keys_, msg, sig in fav_cases:
        valid = suites[name].FastAggregateVerify(keys_, msg, sig)
        assert valid == case.startswith("valid"), case
        fav.append(
            {
                "case": case,
                "suite": name,
                "pks": [hx(k) for k in keys_],
                "msg": hx(msg),
                "sig": hx(sig),
                "valid": valid,
            }
        )
    out["fast_aggregate_verify"] = fav

    # a quorum certificate: validators 0..3 (the keygen keys, equal stake) sign braid's vote
    # signing root under VOTE_DST; the QC carries a signer bitmap (bit i = validator i, least
    # significant first) and the aggregate. QC_SIGNING_ROOT is `Vote::signing_root()` of the vote
    # in bls_vectors.rs (keccak256 of its ABI encoding; the test asserts it): py_ecc has no
    # keccak, and the point here is the BLS side.
    root = bytes.fromhex(QC_SIGNING_ROOT)
    votes = [BraidVote.Sign(keys[i][1], root) for i in range(4)]
    agg013 = G2ProofOfPossession.Aggregate([votes[0], votes[1], votes[3]])
    assert BraidVote.FastAggregateVerify([pks[0], pks[1], pks[3]], root, agg013)
    agg01 = G2ProofOfPossession.Aggregate(votes[:2])
    out["qc"] = {
        "signing_root": hx(root),
        "stake_each": 100,
        "cases": [
            {"case": "three of four signed", "signers": "0x0b", "sig": hx(agg013)},
            {"case": "bitmap names a non-signer", "signers": "0x07", "sig": hx(agg013)},
            {"case": "two of four signed", "signers": "0x03", "sig": hx(agg01)},
            {"case": "infinity signature", "signers": "0x0b", "sig": hx(G2_INFINITY)},
        ],
    }

    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
