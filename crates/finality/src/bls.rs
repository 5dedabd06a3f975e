//! BLS12-381 keys and signatures (blst, "minimal public key" variant: public keys in G1, 48 bytes
//! compressed; signatures in G2, 96 bytes compressed), behind byte newtypes that can be stored,
//! hashed and sent anywhere. Every decoding of bytes into a point checks that it is on the curve,
//! in the prime-order subgroup, and not the point at infinity.

use std::fmt;

use alloy_primitives::FixedBytes;
use blst::min_pk::{AggregateSignature, PublicKey, SecretKey, Signature};
use blst::{MultiPoint, BLST_ERROR};
use serde::{Deserialize, Serialize};

use crate::{FinalityError, Vote, POP_DST, VOTE_DST};

/// Minimum length of the seed a secret key is derived from (the IETF BLS `KeyGen` bound).
pub const MIN_SEED_LEN: usize = 32;

/// A BLS secret key. Its `Debug` output shows the public key only.
pub struct BlsSecretKey(SecretKey);

impl fmt::Debug for BlsSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlsSecretKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl BlsSecretKey {
    /// Derives a key from `seed` with the IETF `KeyGen` (HKDF-SHA-256); the seed must hold at
    /// least [`MIN_SEED_LEN`] bytes of entropy.
    pub fn from_seed(seed: &[u8]) -> Result<Self, FinalityError> {
        if seed.len() < MIN_SEED_LEN {
            return Err(FinalityError::InvalidKey("seed shorter than 32 bytes"));
        }
        SecretKey::key_gen(seed, &[])
            .map(Self)
            .map_err(|_| FinalityError::InvalidKey("key generation failed"))
    }

    /// The matching public key.
    pub fn public_key(&self) -> BlsPublicKey {
        BlsPublicKey(FixedBytes(self.0.sk_to_pk().compress()))
    }

    /// Signs `msg` under the domain separation tag `dst`.
    pub fn sign(&self, msg: &[u8], dst: &[u8]) -> BlsSignature {
        BlsSignature(FixedBytes(self.0.sign(msg, dst, &[]).compress()))
    }

    /// Signs a vote: `sign(vote.signing_root(), VOTE_DST)`.
    pub fn sign_vote(&self, vote: &Vote) -> BlsSignature {
        self.sign(vote.signing_root().as_slice(), VOTE_DST)
    }

    /// The proof of possession of this key: `sign(compressed public key, POP_DST)`.
    pub fn proof_of_possession(&self) -> BlsSignature {
        self.sign(self.public_key().0.as_slice(), POP_DST)
    }
}

/// A BLS public key: a compressed G1 point (48 bytes). Not validated on construction; every use
/// decodes and group-checks it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct BlsPublicKey(pub FixedBytes<48>);

impl BlsPublicKey {
    /// Decodes the point: on the curve, in the G1 subgroup, not the point at infinity.
    pub(crate) fn to_point(self) -> Result<PublicKey, FinalityError> {
        PublicKey::key_validate(self.0.as_slice()).map_err(|_| FinalityError::BadPublicKey)
    }

    /// Checks a proof of possession: `pop` is this key's signature of its own compressed bytes
    /// under [`POP_DST`]. Also rejects keys that do not decode (see
    /// [`FinalityError::BadPublicKey`]). A key must pass this before it joins a validator set or
    /// DA committee, because aggregate verification is only sound for keys whose owners proved
    /// they know the secret key (otherwise a "rogue key" `pk_x - pk_honest` forges aggregates).
    pub fn verify_pop(&self, pop: &BlsSignature) -> Result<(), FinalityError> {
        let pk = self.to_point()?;
        verify(&pop.to_point()?, &pk, self.0.as_slice(), POP_DST)
    }
}

/// A BLS signature: a compressed G2 point (96 bytes), individual or aggregate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct BlsSignature(pub FixedBytes<96>);

impl BlsSignature {
    /// Decodes the point: on the curve, in the G2 subgroup, not the point at infinity.
    pub(crate) fn to_point(self) -> Result<Signature, FinalityError> {
        Signature::sig_validate(self.0.as_slice(), true)
            .map_err(|_| FinalityError::InvalidSignature)
    }

    pub(crate) fn from_point(sig: &Signature) -> Self {
        Self(FixedBytes(sig.compress()))
    }

    /// Verifies this signature of `msg` under `dst` by the key `pk`.
    pub fn verify(&self, pk: &BlsPublicKey, msg: &[u8], dst: &[u8]) -> Result<(), FinalityError> {
        verify(&self.to_point()?, &pk.to_point()?, msg, dst)
    }

    /// Verifies this signature as the aggregate of signatures of one `msg` under `dst` by every
    /// key of `pks` (fast aggregate verification, as a QC or an availability certificate is
    /// checked). Every key is decoded and group-checked ([`FinalityError::BadPublicKey`]); no
    /// key at all is [`FinalityError::InvalidSignature`]. Sound only for keys whose proofs of
    /// possession were verified ([`BlsPublicKey::verify_pop`]).
    pub fn fast_aggregate_verify(
        &self,
        pks: &[BlsPublicKey],
        msg: &[u8],
        dst: &[u8],
    ) -> Result<(), FinalityError> {
        let sig = self.to_point()?;
        let keys = pks
            .iter()
            .map(|pk| pk.to_point())
            .collect::<Result<Vec<_>, _>>()?;
        fast_aggregate_verify(&sig, &keys, msg, dst)
    }
}

/// Aggregates signatures (the sum of the G2 points). Every input is decoded and group-checked.
pub fn aggregate_signatures(sigs: &[BlsSignature]) -> Result<BlsSignature, FinalityError> {
    let points = sigs
        .iter()
        .map(|s| s.to_point())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(BlsSignature::from_point(&aggregate_points(
        &points.iter().collect::<Vec<_>>(),
    )?))
}

/// Sums decoded (already group-checked) signatures.
pub(crate) fn aggregate_points(sigs: &[&Signature]) -> Result<Signature, FinalityError> {
    if sigs.is_empty() {
        return Err(FinalityError::EmptyAggregate);
    }
    AggregateSignature::aggregate(sigs, false)
        .map(|agg| agg.to_signature())
        .map_err(|_| FinalityError::InvalidSignature)
}

/// One signature check against decoded (already group-checked) points.
pub(crate) fn verify(
    sig: &Signature,
    pk: &PublicKey,
    msg: &[u8],
    dst: &[u8],
) -> Result<(), FinalityError> {
    match sig.verify(false, msg, dst, &[], pk, false) {
        BLST_ERROR::BLST_SUCCESS => Ok(()),
        _ => Err(FinalityError::InvalidSignature),
    }
}

/// Fast aggregate verification: every key signed the same `msg`. Sums the public keys and runs
/// one signature check. The keys must be group-checked and have proofs of possession.
///
/// The sum uses blst's batched affine addition (`blst_p1s_add`: Montgomery's trick, one field
/// inversion per batch), which blst spreads over its thread pool from 384 keys on.
pub(crate) fn fast_aggregate_verify(
    sig: &Signature,
    pks: &[PublicKey],
    msg: &[u8],
    dst: &[u8],
) -> Result<(), FinalityError> {
    if pks.is_empty() {
        return Err(FinalityError::InvalidSignature);
    }
    let aggregate = pks.add().to_public_key();
    verify(sig, &aggregate, msg, dst)
}
