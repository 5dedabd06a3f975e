//! Quorum certificates: one vote, a signer bitmap, one aggregate signature.

use alloy_primitives::{keccak256, B256, U256};
use blst::min_pk::PublicKey;
use serde::{Deserialize, Serialize};

use crate::vote::check_epoch;
use crate::{
    bitmap, bls, BlsSignature, FinalityError, PreparedValidatorSet, ValidatorSet, Vote, VOTE_DST,
};

/// Proof that validators holding more than two thirds of an epoch's stake signed one accepting
/// [`Vote`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumCertificate {
    /// The vote every signer signed; `accept` is `true`.
    pub vote: Vote,
    /// Signer bitmap over the epoch's validator indices: bit `i` is bit `i % 8` of byte `i / 8`
    /// (least significant first); exactly `ceil(n / 8)` bytes; no bit set at or beyond `n`.
    pub signers: Vec<u8>,
    /// Aggregate (sum) of the signers' signatures of `vote.signing_root()` under [`VOTE_DST`].
    pub signature: BlsSignature,
}

impl QuorumCertificate {
    /// Verifies the certificate against its epoch's set with one fast aggregate verification
    /// (the signers' public keys are summed, then one signature check) and returns the signers'
    /// stake. Fails on a vote of another epoch, a rejecting vote, a malformed bitmap, signers
    /// without a quorum, a signer key that does not decode, or a bad signature.
    ///
    /// Decodes each signer's key from `set`; [`QuorumCertificate::verify_prepared`] reuses keys
    /// decoded once per epoch.
    pub fn verify(&self, set: &ValidatorSet) -> Result<U256, FinalityError> {
        let (signers, stake) = self.check_signers(set, set.total_stake())?;
        let keys = signers
            .iter()
            .map(|&i| {
                set.validators
                    .get(i as usize)
                    .ok_or(FinalityError::UnknownValidator(i))?
                    .pubkey
                    .to_point()
                    .map_err(|_| FinalityError::BadValidatorKey(i))
            })
            .collect::<Result<Vec<PublicKey>, _>>()?;
        self.verify_signature(&keys)?;
        Ok(stake)
    }

    /// [`QuorumCertificate::verify`] with the set's keys decoded in advance.
    pub fn verify_prepared(&self, set: &PreparedValidatorSet) -> Result<U256, FinalityError> {
        let (signers, stake) = self.check_signers(set.set(), set.total_stake())?;
        let keys = signers
            .iter()
            .map(|&i| set.key(i).copied())
            .collect::<Result<Vec<_>, _>>()?;
        self.verify_signature(&keys)?;
        Ok(stake)
    }

    /// Epoch, acceptance, bitmap and quorum checks; returns the signer indices and their stake.
    fn check_signers(
        &self,
        set: &ValidatorSet,
        total: U256,
    ) -> Result<(Vec<u32>, U256), FinalityError> {
        check_epoch(set.epoch, &self.vote)?;
        if !self.vote.accept {
            return Err(FinalityError::NotAnAccept);
        }
        let signers = bitmap::decode(&self.signers, set.validators.len())?;
        let mut stake = U256::ZERO;
        for &i in &signers {
            let validator = set
                .validators
                .get(i as usize)
                .ok_or(FinalityError::UnknownValidator(i))?;
            stake = stake.saturating_add(validator.stake);
        }
        if !crate::validator_set::is_quorum_of(stake, total) {
            return Err(FinalityError::NoQuorum {
                signed: stake,
                total,
            });
        }
        Ok((signers, stake))
    }

    fn verify_signature(&self, keys: &[PublicKey]) -> Result<(), FinalityError> {
        let signature = self.signature.to_point()?;
        bls::fast_aggregate_verify(
            &signature,
            keys,
            self.vote.signing_root().as_slice(),
            VOTE_DST,
        )
    }

    /// `keccak256(abi.encodePacked(vote.signing_root(), signers, signature))`: the identity of
    /// the certificate (what DA nodes attest). Injective because only `signers` has a variable
    /// length and the signature has a fixed 96 bytes.
    pub fn hash(&self) -> B256 {
        let mut bytes = Vec::with_capacity(32 + self.signers.len() + 96);
        bytes.extend_from_slice(self.vote.signing_root().as_slice());
        bytes.extend_from_slice(&self.signers);
        bytes.extend_from_slice(self.signature.0.as_slice());
        keccak256(bytes)
    }

    /// Indices of the bits set in `signers`, ascending (no well-formedness check; `verify`
    /// does that).
    pub fn signer_indices(&self) -> Vec<u32> {
        bitmap::set_bits(&self.signers)
    }
}
