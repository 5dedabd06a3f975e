//! The sans-IO vote collector: votes in, quorum certificates and equivocation evidence out.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{B256, U256};
use blst::min_pk::Signature;
use braid_primitives::{BlockNumber, ChainId};

use crate::{
    bitmap, bls, BlsSignature, Evidence, FinalityError, PreparedValidatorSet, QuorumCertificate,
    SignedVote, ValidatorSet,
};

/// Who runs the aggregator. The core is identical in both modes; the shell uses the mode to
/// decide what to do with a [`AggregatorOutput::Certified`] certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AggregationMode {
    /// Validators send their votes to one leader, which runs the aggregator and broadcasts
    /// the certificate.
    #[default]
    LeaderBased,
    /// Validators gossip votes to each other; every node runs an aggregator and any of them may
    /// publish the certificate.
    LeaderFree,
}

/// Aggregator settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AggregatorConfig {
    /// Leader-based or leader-free.
    pub mode: AggregationMode,
    /// How many votes (distinct (chain, height) pairs) one validator may have held by the
    /// aggregator until they are pruned. Bounds the memory a validator can make the
    /// aggregator spend: at most `validators * max_open_votes_per_validator` votes.
    pub max_open_votes_per_validator: usize,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            mode: AggregationMode::LeaderBased,
            max_open_votes_per_validator: 1024,
        }
    }
}

/// What [`VoteAggregator::add`] produced.
// Outputs are few and short-lived; boxing the evidence would only complicate matching on it.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AggregatorOutput {
    /// Accepting votes for one exact [`crate::Vote`] reached a quorum for the first time.
    Certified(QuorumCertificate),
    /// A validator signed two different votes at one (chain, height).
    Equivocation(Evidence),
}

/// A vote that was verified and counted, with its decoded signature (for aggregation).
#[derive(Debug)]
struct HeldVote {
    signed: SignedVote,
    signature: Signature,
}

/// Accepting votes for one exact vote (keyed by signing root).
#[derive(Debug, Default)]
struct Tally {
    stake: U256,
    signers: BTreeSet<u32>,
    certified: bool,
}

/// Everything known about one (chain, height).
#[derive(Debug, Default)]
struct HeightVotes {
    /// The first valid vote of each validator; later different votes are evidence, not votes.
    first_votes: BTreeMap<u32, HeldVote>,
    /// Accepting votes grouped by what they accept.
    tallies: BTreeMap<B256, Tally>,
    /// Validators already reported for equivocating here (reported once).
    equivocators: BTreeSet<u32>,
}

/// Collects the votes of one epoch's validators and emits a quorum certificate for each block
/// that gathers accepting votes from more than two thirds of the stake.
///
/// Leader-based: the leader feeds every vote it receives and broadcasts the certificate.
/// Leader-free: every node runs one and anyone may publish it. The core is the same.
#[derive(Debug)]
pub struct VoteAggregator {
    set: PreparedValidatorSet,
    config: AggregatorConfig,
    heights: BTreeMap<(ChainId, BlockNumber), HeightVotes>,
    pruned_through: BTreeMap<ChainId, BlockNumber>,
    /// Per validator index: how many `first_votes` entries it has.
    open_votes: Vec<usize>,
}

impl VoteAggregator {
    /// An aggregator for `set`'s epoch with the default configuration.
    pub fn new(set: ValidatorSet) -> Self {
        Self::with_config(set, AggregatorConfig::default())
    }

    /// An aggregator for `set`'s epoch.
    pub fn with_config(set: ValidatorSet, config: AggregatorConfig) -> Self {
        let open_votes = vec![0; set.validators.len()];
        Self {
            set: PreparedValidatorSet::new(set),
            config,
            heights: BTreeMap::new(),
            pruned_through: BTreeMap::new(),
            open_votes,
        }
    }

    /// The validator set.
    pub fn set(&self) -> &ValidatorSet {
        self.set.set()
    }

    /// The configuration.
    pub fn config(&self) -> &AggregatorConfig {
        &self.config
    }

    /// Adds one vote.
    ///
    /// The vote must be for the set's epoch, by a validator of the set, validly signed, and
    /// above the pruned height of its chain; otherwise it is an error and nothing changes. The
    /// aggregator keeps the first accepting vote of each validator at each (chain, height):
    /// - a reject vote (once its signature verified) changes nothing;
    /// - the same vote again changes nothing;
    /// - a different accepting vote yields [`AggregatorOutput::Equivocation`] (once per validator and
    ///   height) and is not counted;
    /// - when accepting votes for one exact vote first exceed two thirds of the stake, yields
    ///   [`AggregatorOutput::Certified`]; later votes for it yield nothing.
    pub fn add(&mut self, vote: SignedVote) -> Result<Vec<AggregatorOutput>, FinalityError> {
        let key = (vote.vote.chainId, vote.vote.height);
        if let Some(&pruned_through) = self.pruned_through.get(&key.0) {
            if key.1 <= pruned_through {
                return Err(FinalityError::Pruned {
                    chain: key.0,
                    height: key.1,
                    pruned_through,
                });
            }
        }
        let validator = vote.validator;
        // An exact repeat of a counted (hence verified) vote: skip the signature check, which
        // matters when votes are gossiped.
        let held = self
            .heights
            .get(&key)
            .and_then(|h| h.first_votes.get(&validator));
        if held.is_some_and(|held| held.signed == vote) {
            return Ok(Vec::new());
        }
        let signature = vote.verified_signature(&self.set)?;
        if !vote.vote.accept {
            // A reject vote certifies nothing and is no equivocation (an honest validator
            // rejects an invalid block and later accepts its replacement at the same height).
            return Ok(Vec::new());
        }

        if let Some(height) = self.heights.get_mut(&key) {
            if let Some(first) = height.first_votes.get(&validator) {
                if first.signed.vote == vote.vote || !height.equivocators.insert(validator) {
                    return Ok(Vec::new());
                }
                return Ok(vec![AggregatorOutput::Equivocation(
                    Evidence::Equivocation {
                        a: first.signed.clone(),
                        b: vote,
                    },
                )]);
            }
        }

        let limit = self.config.max_open_votes_per_validator;
        let open = self
            .open_votes
            .get(validator as usize)
            .ok_or(FinalityError::UnknownValidator(validator))?;
        if *open >= limit {
            return Err(FinalityError::TooManyOpenVotes { validator, limit });
        }

        let stake = self.set.stake(validator)?;
        let root = vote.vote.signing_root();
        let certificate = if vote.vote.accept {
            self.certificate_if_quorum(key, root, stake, validator, &vote, &signature)?
        } else {
            None
        };

        // Nothing below fails: the vote is now counted.
        if let Some(open) = self.open_votes.get_mut(validator as usize) {
            *open += 1;
        }
        let height = self.heights.entry(key).or_default();
        if vote.vote.accept {
            let tally = height.tallies.entry(root).or_default();
            tally.stake = tally.stake.saturating_add(stake);
            tally.signers.insert(validator);
            tally.certified |= certificate.is_some();
        }
        height.first_votes.insert(
            validator,
            HeldVote {
                signed: vote,
                signature,
            },
        );
        Ok(certificate
            .map(AggregatorOutput::Certified)
            .into_iter()
            .collect())
    }

    /// The certificate that counting `vote` (an accepting vote with signing root `root`, not
    /// yet counted) would complete, if it completes one for the first time.
    fn certificate_if_quorum(
        &self,
        key: (ChainId, BlockNumber),
        root: B256,
        stake: U256,
        validator: u32,
        vote: &SignedVote,
        signature: &Signature,
    ) -> Result<Option<QuorumCertificate>, FinalityError> {
        let height = self.heights.get(&key);
        let tally = height.and_then(|h| h.tallies.get(&root));
        let (counted_stake, certified) =
            tally.map_or((U256::ZERO, false), |t| (t.stake, t.certified));
        if certified || !self.set.is_quorum(counted_stake.saturating_add(stake)) {
            return Ok(None);
        }
        let mut signatures = vec![signature];
        let mut signers = vec![validator];
        if let (Some(height), Some(tally)) = (height, tally) {
            for i in &tally.signers {
                if let Some(held) = height.first_votes.get(i) {
                    signatures.push(&held.signature);
                    signers.push(*i);
                }
            }
        }
        let aggregate = bls::aggregate_points(&signatures)?;
        Ok(Some(QuorumCertificate {
            vote: vote.vote.clone(),
            signers: bitmap::encode(signers, self.set.set().validators.len()),
            signature: BlsSignature::from_point(&aggregate),
        }))
    }

    /// Forgets everything at heights `<= height` of `chain`; later votes there are refused.
    pub fn prune(&mut self, chain: ChainId, height: BlockNumber) {
        let pruned = self.pruned_through.entry(chain).or_insert(0);
        *pruned = (*pruned).max(height);
        let forgotten: Vec<_> = self
            .heights
            .range((chain, 0)..=(chain, height))
            .map(|(key, _)| *key)
            .collect();
        for key in forgotten {
            let Some(votes) = self.heights.remove(&key) else {
                continue;
            };
            for validator in votes.first_votes.keys() {
                if let Some(open) = self.open_votes.get_mut(*validator as usize) {
                    *open = open.saturating_sub(1);
                }
            }
        }
    }
}
