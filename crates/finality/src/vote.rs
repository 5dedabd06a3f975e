//! Votes and signed votes.

// `sol!` generates a constructor with one argument per struct field.
#![allow(clippy::too_many_arguments)]

use alloy_primitives::{keccak256, B256};
use alloy_sol_types::{sol, SolValue};
use blst::min_pk::Signature;
use serde::{Deserialize, Serialize};

use crate::{bls, BlsSignature, FinalityError, PreparedValidatorSet, ValidatorSet, VOTE_DST};

sol! {
    /// A validator's vote on one block: having re-executed block `height` of chain `chainId`
    /// on top of `parentHash`, the validator found block hash `blockHash` and post-state root
    /// `stateRoot`, and accepts (`accept = true`) or rejects the block. `epoch` selects the
    /// validator set. Signing root: `keccak256(abi.encode(vote))`.
    #[derive(Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    struct Vote {
        uint64 chainId;
        uint64 epoch;
        uint64 height;
        bytes32 parentHash;
        bytes32 blockHash;
        bytes32 stateRoot;
        bool accept;
    }
}

impl Vote {
    /// `keccak256(abi.encode(vote))`: the message a validator signs (under [`VOTE_DST`]).
    pub fn signing_root(&self) -> B256 {
        keccak256(self.abi_encode())
    }
}

/// A vote with the signature of validator number `validator` of the vote's epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedVote {
    /// What was voted.
    pub vote: Vote,
    /// Index of the signer in the epoch's [`ValidatorSet`].
    pub validator: u32,
    /// `sign(vote.signing_root(), VOTE_DST)` by that validator.
    pub signature: BlsSignature,
}

impl SignedVote {
    /// Checks the vote is for the set's epoch, the signer is in the set, and the signature is
    /// valid. Decodes the signer's public key; see [`SignedVote::verify_prepared`] to reuse
    /// decoded keys.
    pub fn verify(&self, set: &ValidatorSet) -> Result<(), FinalityError> {
        check_epoch(set.epoch, &self.vote)?;
        let info = usize::try_from(self.validator)
            .ok()
            .and_then(|i| set.validators.get(i))
            .ok_or(FinalityError::UnknownValidator(self.validator))?;
        let pk = info
            .pubkey
            .to_point()
            .map_err(|_| FinalityError::BadValidatorKey(self.validator))?;
        let sig = self.signature.to_point()?;
        bls::verify(&sig, &pk, self.vote.signing_root().as_slice(), VOTE_DST)
    }

    /// [`SignedVote::verify`] with the set's keys decoded once in advance.
    pub fn verify_prepared(&self, set: &PreparedValidatorSet) -> Result<(), FinalityError> {
        self.verified_signature(set).map(|_| ())
    }

    /// Verifies and returns the decoded signature (for aggregation).
    pub(crate) fn verified_signature(
        &self,
        set: &PreparedValidatorSet,
    ) -> Result<Signature, FinalityError> {
        check_epoch(set.set().epoch, &self.vote)?;
        let pk = set.key(self.validator)?;
        let sig = self.signature.to_point()?;
        bls::verify(&sig, pk, self.vote.signing_root().as_slice(), VOTE_DST)?;
        Ok(sig)
    }
}

pub(crate) fn check_epoch(expected: u64, vote: &Vote) -> Result<(), FinalityError> {
    if vote.epoch == expected {
        Ok(())
    } else {
        Err(FinalityError::WrongEpoch {
            expected,
            got: vote.epoch,
        })
    }
}
