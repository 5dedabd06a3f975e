//! Fast-finality settlement (seed 002), sans-IO: validators' BLS votes, quorum certificates,
//! equivocation evidence, slashing protection, and DA availability certificates.
//!
//! # Votes
//!
//! A validator re-executes each block and signs a [`Vote`]
//! `(chainId, epoch, height, parentHash, blockHash, stateRoot, accept)`: "block `height` of chain
//! `chainId`, built on `parentHash`, has hash `blockHash` and post-state root `stateRoot`, and I
//! accept (or reject) it". `epoch` names the [`ValidatorSet`] the vote counts in. The signed
//! message is the signing root `keccak256(abi.encode(vote))` ([`Vote::signing_root`]), signed
//! with BLS12-381 (blst, public keys in G1, signatures in G2, hash-to-curve with the domain
//! separation tag [`VOTE_DST`]). So a vote commits to the exact block, its parent (the fork it
//! extends), and the state it produces.
//!
//! # Quorum certificates
//!
//! A [`QuorumCertificate`] is one accepting vote, a signer bitmap over the epoch's validator
//! indices (bit `i` = bit `i % 8` of byte `i / 8`; exactly `ceil(n / 8)` bytes; no bits beyond
//! `n`) and **one** aggregate signature, the sum of the signers' signatures. It is valid when the
//! signers hold strictly more than two thirds of the epoch's stake (`3 * signed > 2 * total`)
//! and the aggregate verifies against the sum of the signers' public keys
//! ([`QuorumCertificate::verify`]): n G1 additions plus one signature check, instead of n
//! signature checks. Decoding a compressed key (a square root and a subgroup check) costs far
//! more than adding it, so verifiers decode an epoch's keys once ([`PreparedValidatorSet`],
//! [`QuorumCertificate::verify_prepared`]). From 384 signers on, blst sums the keys on its
//! thread pool. Numbers: `docs/benchmarks.md`.
//!
//! # Proofs of possession
//!
//! Summing public keys is only sound if every key's owner knows its secret key. Otherwise an
//! attacker registers the "rogue key" `pk_a - pk_honest` and alone produces signatures that
//! verify as if `pk_honest` had signed too. So a key joins a validator set or DA committee only
//! with a proof of possession, its signature of its own compressed bytes under the separate tag
//! [`POP_DST`] ([`BlsSecretKey::proof_of_possession`], [`BlsPublicKey::verify_pop`]); the SL
//! checks it at registration.
//!
//! # Collecting votes: leader-based and leader-free
//!
//! [`VoteAggregator`] is the collector: it verifies each vote, keeps one vote per validator and
//! (chain, height), emits a certificate the first time accepting votes for one exact vote reach a
//! quorum, and emits [`Evidence::Equivocation`] when a validator's second vote at a height
//! differs from its first. In the leader-based variant the validators send votes to a leader,
//! which runs the aggregator and broadcasts the certificate; in the leader-free variant every
//! node gossips votes and runs its own aggregator, and any of them may publish the certificate.
//! The core is the same; only who runs it differs ([`AggregationMode`]).
//!
//! # L2-final
//!
//! A block is *L2-final* when its QC verifies against the epoch's validator set and a
//! [`DaCommittee`] has certified that it stores that QC: DA nodes ([`DaNode`]) sign
//! `keccak256("braid-da" ‖ qc.hash())` under [`DA_DST`], and attestations from more than two
//! thirds of the nodes aggregate into an [`AvailabilityCertificate`] ([`is_l2_final`]). Every
//! interval the QCs also go to the SL, which verifies them again (postconfirmation).
//!
//! # Slashing and slashing protection
//!
//! Two validly signed, different votes by one validator at one (chain, epoch, height) are
//! [`Evidence`] anyone can submit to the SL. An honest validator never produces it, even across
//! crashes: [`ValidatorSigner`] signs only after its [`SlashingProtection`] durably recorded the
//! vote at its (chain, height), and refuses a different vote there
//! ([`FinalityError::WouldEquivocate`]); re-signing the identical vote is allowed (a restarted
//! validator may have lost the signature it sent). [`RedbSlashingProtection`] fsyncs each record
//! before the signature exists; [`MemorySlashingProtection`] is for simulations.

mod aggregator;
mod bitmap;
mod bls;
mod da;
mod error;
mod evidence;
mod qc;
mod signer;
mod validator_set;
mod vote;

pub use aggregator::{AggregationMode, AggregatorConfig, AggregatorOutput, VoteAggregator};
pub use bls::{aggregate_signatures, BlsPublicKey, BlsSecretKey, BlsSignature, MIN_SEED_LEN};
pub use da::{
    availability_message, is_l2_final, AvailabilityCertificate, DaAttestation, DaCommittee, DaNode,
};
pub use error::FinalityError;
pub use evidence::Evidence;
pub use qc::QuorumCertificate;
pub use signer::{
    MemorySlashingProtection, RedbSlashingProtection, SlashingProtection, ValidatorSigner,
};
pub use validator_set::{PreparedValidatorSet, ValidatorInfo, ValidatorSet};
pub use vote::{SignedVote, Vote};

/// Domain separation tag for vote signatures (Ethereum's BLS ciphersuite, Braid tag).
pub const VOTE_DST: &[u8] = b"BRAID_VOTE_V1_BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// Tag for proofs of possession (prevents rogue-key attacks on aggregation).
pub const POP_DST: &[u8] = b"BRAID_POP_V1_BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// Tag for DA availability attestations.
pub const DA_DST: &[u8] = b"BRAID_DA_V1_BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

#[cfg(test)]
mod tests;
