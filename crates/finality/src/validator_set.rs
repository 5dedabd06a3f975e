//! Validator sets, their stake arithmetic, and sets with pre-decoded keys.

use std::collections::BTreeSet;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::SolValue;
use blst::min_pk::PublicKey;
use serde::{Deserialize, Serialize};

use crate::{BlsPublicKey, FinalityError};

/// One validator of an epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorInfo {
    /// The account that staked (and is slashed).
    pub address: Address,
    /// Its BLS key; the SL checks a proof of possession before the key joins a set.
    pub pubkey: BlsPublicKey,
    /// Its voting weight.
    pub stake: U256,
}

/// The validators of one epoch. The position in `validators` is the validator index, which is
/// also its bit in signer bitmaps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorSet {
    /// The epoch the set votes in.
    pub epoch: u64,
    /// The validators, in index order.
    pub validators: Vec<ValidatorInfo>,
}

impl ValidatorSet {
    /// Sum of all stakes (saturating at `U256::MAX`; [`ValidatorSet::validate`] rejects sets
    /// whose sum overflows).
    pub fn total_stake(&self) -> U256 {
        self.validators
            .iter()
            .fold(U256::ZERO, |sum, v| sum.saturating_add(v.stake))
    }

    /// Whether `stake` is strictly more than two thirds of the total: `3 * stake > 2 * total`.
    pub fn is_quorum(&self, stake: U256) -> bool {
        is_quorum_of(stake, self.total_stake())
    }

    /// Index of the validator with this address.
    pub fn index_of(&self, address: &Address) -> Option<u32> {
        self.validators
            .iter()
            .position(|v| v.address == *address)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// A commitment to the set:
    /// `keccak256(abi.encode(uint64 epoch, address[] addresses, bytes[] pubkeys, uint256[] stakes))`.
    pub fn hash(&self) -> B256 {
        let addresses: Vec<Address> = self.validators.iter().map(|v| v.address).collect();
        let pubkeys: Vec<Bytes> = self
            .validators
            .iter()
            .map(|v| Bytes::copy_from_slice(v.pubkey.0.as_slice()))
            .collect();
        let stakes: Vec<U256> = self.validators.iter().map(|v| v.stake).collect();
        keccak256((self.epoch, addresses, pubkeys, stakes).abi_encode_params())
    }

    /// Checks the set is usable: non-empty, at most `u32::MAX` validators, distinct addresses
    /// and keys, every key decodes, every stake non-zero, and the total does not overflow.
    /// (Proofs of possession are checked when keys are registered, not here.)
    pub fn validate(&self) -> Result<(), FinalityError> {
        let invalid = |reason: String| Err(FinalityError::InvalidValidatorSet(reason));
        if self.validators.is_empty() {
            return invalid("no validators".into());
        }
        if u32::try_from(self.validators.len()).is_err() {
            return invalid("more than u32::MAX validators".into());
        }
        let mut addresses = BTreeSet::new();
        let mut keys = BTreeSet::new();
        let mut total = U256::ZERO;
        for (i, v) in self.validators.iter().enumerate() {
            if !addresses.insert(v.address) {
                return invalid(format!("duplicate address {} (index {i})", v.address));
            }
            if !keys.insert(v.pubkey.0) {
                return invalid(format!("duplicate public key (index {i})"));
            }
            if v.pubkey.to_point().is_err() {
                return invalid(format!("invalid public key (index {i})"));
            }
            if v.stake.is_zero() {
                return invalid(format!("zero stake (index {i})"));
            }
            total = match total.checked_add(v.stake) {
                Some(t) => t,
                None => return invalid("total stake overflows uint256".into()),
            };
        }
        Ok(())
    }
}

/// `3 * stake > 2 * total`, computed without overflow as `stake > total - ceil(total / 3)`
/// (for integers, `3s > 2t` iff `s > floor(2t / 3) = t - ceil(t / 3)`).
pub(crate) fn is_quorum_of(stake: U256, total: U256) -> bool {
    let third_rounded_up = total / U256::from(3) + U256::from(!(total % U256::from(3)).is_zero());
    stake > total - third_rounded_up
}

/// A validator set with every public key decoded and group-checked once, for verifying many
/// votes and certificates of one epoch (decoding a key is a field square root plus a subgroup
/// check). Validators whose key does not decode stay in the set; whatever they sign
/// fails with [`FinalityError::BadValidatorKey`].
#[derive(Clone, Debug)]
pub struct PreparedValidatorSet {
    set: ValidatorSet,
    keys: Vec<Option<PublicKey>>,
    total_stake: U256,
}

impl PreparedValidatorSet {
    /// Decodes every key of `set`.
    pub fn new(set: ValidatorSet) -> Self {
        let keys = set
            .validators
            .iter()
            .map(|v| v.pubkey.to_point().ok())
            .collect();
        let total_stake = set.total_stake();
        Self {
            set,
            keys,
            total_stake,
        }
    }

    /// The underlying set.
    pub fn set(&self) -> &ValidatorSet {
        &self.set
    }

    /// [`ValidatorSet::total_stake`], computed once.
    pub fn total_stake(&self) -> U256 {
        self.total_stake
    }

    /// [`ValidatorSet::is_quorum`] against the cached total.
    pub fn is_quorum(&self, stake: U256) -> bool {
        is_quorum_of(stake, self.total_stake)
    }

    /// The decoded key of validator `index`.
    pub(crate) fn key(&self, index: u32) -> Result<&PublicKey, FinalityError> {
        match usize::try_from(index).ok().and_then(|i| self.keys.get(i)) {
            None => Err(FinalityError::UnknownValidator(index)),
            Some(None) => Err(FinalityError::BadValidatorKey(index)),
            Some(Some(pk)) => Ok(pk),
        }
    }

    /// The stake of validator `index`.
    pub(crate) fn stake(&self, index: u32) -> Result<U256, FinalityError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.set.validators.get(i))
            .map(|v| v.stake)
            .ok_or(FinalityError::UnknownValidator(index))
    }
}
