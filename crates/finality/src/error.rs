//! The crate's one error type.

use alloy_primitives::{B256, U256};
use braid_primitives::{BlockNumber, ChainId};

/// Everything that can go wrong when signing, verifying or collecting votes and certificates.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FinalityError {
    /// A secret key could not be derived (e.g. the seed is shorter than 32 bytes).
    #[error("invalid secret key: {0}")]
    InvalidKey(&'static str),
    /// Public-key bytes that are not a compressed G1 point of the prime-order subgroup, or the
    /// point at infinity.
    #[error("invalid BLS public key (malformed, infinity, or not in the G1 subgroup)")]
    BadPublicKey,
    /// A validator of the set has a public key that does not decode (see
    /// [`FinalityError::BadPublicKey`]); nothing it signs can be verified.
    #[error("validator {0} has an invalid BLS public key")]
    BadValidatorKey(u32),
    /// A signature that is malformed, not in the G2 subgroup, the point at infinity, or does not
    /// verify against the message and key(s).
    #[error("invalid BLS signature")]
    InvalidSignature,
    /// [`crate::aggregate_signatures`] was given no signature.
    #[error("cannot aggregate an empty list of signatures")]
    EmptyAggregate,
    /// A vote or certificate of another epoch than the validator set it is checked against.
    #[error("vote is for epoch {got}, the validator set is for epoch {expected}")]
    WrongEpoch {
        /// The epoch of the validator set.
        expected: u64,
        /// The epoch named by the vote.
        got: u64,
    },
    /// A validator index outside the set.
    #[error("no validator with index {0} in the set")]
    UnknownValidator(u32),
    /// A signer bitmap whose length is not `ceil(n / 8)` bytes for `n` members, or that has a bit
    /// set at or beyond `n`.
    #[error("signer bitmap of {bytes} bytes does not describe a subset of {members} members")]
    MalformedBitmap {
        /// Length of the bitmap in bytes.
        bytes: usize,
        /// Number of members (validators or DA nodes) it should describe.
        members: usize,
    },
    /// The signers hold no more than two thirds of the stake.
    #[error("signers hold {signed} of {total} stake, not more than two thirds")]
    NoQuorum {
        /// Stake of the signers.
        signed: U256,
        /// Stake of the whole set.
        total: U256,
    },
    /// A quorum certificate over a vote with `accept = false`: a QC certifies acceptance only.
    #[error("a quorum certificate must certify an accepting vote")]
    NotAnAccept,
    /// Signing this vote would equivocate: a different vote was signed at the same height.
    #[error("already signed a different vote for chain {chain} at height {height}")]
    WouldEquivocate {
        /// The chain of the vote.
        chain: ChainId,
        /// The height of the vote.
        height: BlockNumber,
    },
    /// Submitted evidence does not prove misbehaviour.
    #[error("not an equivocation: {0}")]
    NotEquivocation(&'static str),
    /// A vote at a height the aggregator has already pruned.
    #[error(
        "votes for chain {chain} up to height {pruned_through} are pruned (got height {height})"
    )]
    Pruned {
        /// The chain of the vote.
        chain: ChainId,
        /// The height of the vote.
        height: BlockNumber,
        /// The highest pruned height of that chain.
        pruned_through: BlockNumber,
    },
    /// A validator already has the maximum number of votes held by the aggregator.
    #[error("validator {validator} already has {limit} votes held by the aggregator")]
    TooManyOpenVotes {
        /// The validator index.
        validator: u32,
        /// The configured limit.
        limit: usize,
    },
    /// A validator set that cannot be used (empty, duplicate member, zero stake, ...).
    #[error("invalid validator set: {0}")]
    InvalidValidatorSet(String),
    /// An availability attestation or certificate for another QC than expected.
    #[error("availability is attested for QC {got}, expected QC {expected}")]
    AvailabilityMismatch {
        /// The QC hash that was expected.
        expected: B256,
        /// The QC hash that was attested.
        got: B256,
    },
    /// A DA node index outside the committee.
    #[error("no DA node with index {0} in the committee")]
    UnknownDaNode(u32),
    /// A DA attestation whose signature does not verify.
    #[error("invalid availability attestation from DA node {0}")]
    InvalidAttestation(u32),
    /// Too few DA nodes attested: more than two thirds are needed.
    #[error("{attested} of {nodes} DA nodes attested, more than two thirds are needed")]
    NoAvailabilityQuorum {
        /// Distinct nodes that attested.
        attested: usize,
        /// Size of the committee.
        nodes: usize,
    },
    /// The slashing-protection database failed or holds corrupt data.
    #[error("slashing-protection store: {0}")]
    Store(String),
}
