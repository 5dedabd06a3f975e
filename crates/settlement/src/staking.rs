//! Fast-finality settlement on the SL (seed 002): validator staking with epochs, postconfirmation
//! of quorum certificates, and slashing on evidence.
//!
//! - **Staking.** `joinValidators` locks stake from the sender's SL balance, with the BLS key's
//!   proof of possession (without it, one key could be chosen to cancel others in an aggregate).
//!   The set of an epoch (`epoch_ms` of SL time) is fixed at the epoch's first SL block: joins
//!   take effect from the next snapshot. `exitValidators` leaves from the next snapshot and
//!   starts the unbonding clock; `withdrawStake` pays the stake back only after `unbonding_ms`,
//!   which the configuration requires to exceed the settlement horizon (the council timeout), so
//!   a validator is still slashable for everything it signed while it could matter.
//! - **Postconfirmation.** `postconfirm(qc, header)` verifies a QC against the set of the epoch
//!   its vote names (one fast-aggregate-verify), checks that `header` is the certified block, and
//!   records the block's `LocalRoot` as certified. Only QCs of the current epoch (of SL time) or
//!   the previous one are accepted; an older one is refused with
//!   [`SettlementError::StaleQc`](crate::SettlementError::StaleQc): its validators may have
//!   exited and withdrawn their stake since (unbonding only covers the settlement horizon), so
//!   nothing slashable stands behind it. A `qc` import settles like a pre-commit
//!   (extension proof into the executed source batch) *and* requires that record.
//! - **Slashing.** Anyone may submit evidence: two different votes by one validator at one
//!   (chain, height) — equivocation — or an accept vote for a block that the SL finds invalid by
//!   re-executing the committed batch holding it. The offender's whole stake is taken: a share
//!   (`reporter_share_percent`) goes to the reporter's SL balance, the rest is burned. A slashed
//!   validator is dropped from the next epoch's set. Within an epoch the set is fixed, and its
//!   QCs are judged against it: with less than a third of the stake Byzantine, a QC still holds
//!   more than a third of honest stake whether or not its Byzantine signers were slashed since
//!   (discounting them would only strand blocks certified before the slash).

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, B256, U256};
use braid_finality::{
    BlsPublicKey, BlsSignature, Evidence, PreparedValidatorSet, QuorumCertificate, SignedVote,
    ValidatorInfo, ValidatorSet,
};
use braid_primitives::{BlockHeader, BlockNumber, ChainId};

/// Where a staked validator is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StakeStatus {
    /// Joined; in every set snapshotted from now on.
    Active,
    /// Asked to leave at `since_ms`; out of the next sets; stake withdrawable after unbonding.
    Exiting {
        /// When the exit was requested.
        since_ms: u64,
    },
    /// Slashed: stake taken, out of every set from now on.
    Slashed,
    /// Stake paid back.
    Withdrawn,
}

/// A validator's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StakeRecord {
    /// BLS public key (proof of possession checked at join).
    pub pubkey: BlsPublicKey,
    /// Stake held by the SL.
    pub stake: U256,
    /// Status.
    pub status: StakeStatus,
}

/// A block whose QC the SL verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostconfirmedBlock {
    /// The certified block hash.
    pub block_hash: B256,
    /// Its `LocalRoot`.
    pub local_root: B256,
    /// Its message count.
    pub message_count: u64,
    /// The epoch of the certifying set.
    pub epoch: u64,
    /// Stake that signed.
    pub stake: U256,
}

/// Why a validator was slashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SlashReason {
    /// Two different votes at one height.
    Equivocation,
    /// An accept vote for an invalid block.
    InvalidAccept,
}

/// Staking, sets, postconfirmations and slashing state.
#[derive(Debug, Default, Clone)]
pub struct Staking {
    /// Every validator ever registered.
    pub validators: BTreeMap<Address, StakeRecord>,
    /// The set of each epoch, once snapshotted.
    pub sets: BTreeMap<u64, PreparedValidatorSet>,
    /// Postconfirmed blocks per chain.
    pub postconfirmed: BTreeMap<ChainId, BTreeMap<BlockNumber, PostconfirmedBlock>>,
    /// Blocks found invalid by re-execution: (chain, block hash).
    pub invalid_blocks: BTreeSet<(ChainId, B256)>,
    /// Stake held.
    pub staked: U256,
    /// Slashed stake burned.
    pub burned: U256,
}

impl Staking {
    /// The set of `epoch`, if snapshotted.
    pub fn set(&self, epoch: u64) -> Option<&ValidatorSet> {
        self.sets.get(&epoch).map(|s| s.set())
    }

    /// The newest snapshotted epoch.
    pub fn current_epoch(&self) -> Option<u64> {
        self.sets.keys().next_back().copied()
    }

    /// Takes the snapshot of `epoch` from the active, unslashed validators (address order).
    pub(crate) fn snapshot(&mut self, epoch: u64) -> Option<(B256, usize)> {
        if self.sets.contains_key(&epoch) {
            return None;
        }
        let validators: Vec<ValidatorInfo> = self
            .validators
            .iter()
            .filter(|(_, r)| r.status == StakeStatus::Active && !r.stake.is_zero())
            .map(|(a, r)| ValidatorInfo {
                address: *a,
                pubkey: r.pubkey,
                stake: r.stake,
            })
            .collect();
        if validators.is_empty() {
            return None;
        }
        let size = validators.len();
        let set = ValidatorSet { epoch, validators };
        let hash = set.hash();
        self.sets.insert(epoch, PreparedValidatorSet::new(set));
        Some((hash, size))
    }

    /// Verifies `qc` for `header`; returns the record to keep.
    pub(crate) fn check_postconfirm(
        &self,
        qc: &QuorumCertificate,
        header: &BlockHeader,
    ) -> Result<PostconfirmedBlock, String> {
        let v = &qc.vote;
        let prepared = self
            .sets
            .get(&v.epoch)
            .ok_or_else(|| format!("no validator set for epoch {}", v.epoch))?;
        if header.hash() != v.blockHash
            || header.chainId != v.chainId
            || header.number != v.height
            || header.parentHash != v.parentHash
            || header.stateRoot != v.stateRoot
        {
            return Err("the header is not the block the QC certifies".into());
        }
        let counted = qc.verify_prepared(prepared).map_err(|e| e.to_string())?;
        Ok(PostconfirmedBlock {
            block_hash: v.blockHash,
            local_root: header.localRoot,
            message_count: header.messageCount,
            epoch: v.epoch,
            stake: counted,
        })
    }

    /// Checks equivocation evidence; returns the offender's address.
    pub(crate) fn check_equivocation(&self, evidence: &Evidence) -> Result<Address, String> {
        let Evidence::Equivocation { a, .. } = evidence;
        let set = self
            .set(a.vote.epoch)
            .ok_or_else(|| format!("no validator set for epoch {}", a.vote.epoch))?;
        let index = evidence.verify(set).map_err(|e| e.to_string())?;
        let offender = set
            .validators
            .get(index as usize)
            .map(|v| v.address)
            .ok_or_else(|| format!("validator {index} not in the set"))?;
        self.slashable(&offender)?;
        Ok(offender)
    }

    /// Checks an accept vote's signature; returns the signer's address.
    pub(crate) fn check_vote_signer(&self, vote: &SignedVote) -> Result<Address, String> {
        let set = self
            .set(vote.vote.epoch)
            .ok_or_else(|| format!("no validator set for epoch {}", vote.vote.epoch))?;
        vote.verify(set).map_err(|e| e.to_string())?;
        if !vote.vote.accept {
            return Err("the vote rejects the block".into());
        }
        let signer = set
            .validators
            .get(vote.validator as usize)
            .map(|v| v.address)
            .ok_or_else(|| format!("validator {} not in the set", vote.validator))?;
        self.slashable(&signer)?;
        Ok(signer)
    }

    fn slashable(&self, who: &Address) -> Result<(), String> {
        match self.validators.get(who).map(|r| r.status) {
            Some(StakeStatus::Slashed) => Err(format!("{who} is already slashed")),
            Some(StakeStatus::Withdrawn) | None => Err(format!("{who} holds no stake")),
            _ => Ok(()),
        }
    }

    /// Takes `who`'s stake: `share_percent` to `reporter`, the rest burned. Returns
    /// (reward, burned).
    pub(crate) fn slash(&mut self, who: &Address, share_percent: u8) -> (U256, U256) {
        let Some(rec) = self.validators.get_mut(who) else {
            return (U256::ZERO, U256::ZERO);
        };
        let stake = std::mem::take(&mut rec.stake);
        rec.status = StakeStatus::Slashed;
        self.staked = self.staked.saturating_sub(stake);
        let reward = stake * U256::from(share_percent.min(100)) / U256::from(100u8);
        let burned = stake - reward;
        self.burned = self.burned.saturating_add(burned);
        (reward, burned)
    }
}

/// A `joinValidators` call's payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JoinRequest {
    /// BLS public key.
    pub pubkey: BlsPublicKey,
    /// Proof of possession of its secret key.
    pub pop: BlsSignature,
    /// Stake to lock from the sender's SL balance.
    pub stake: U256,
}

pub(crate) fn err(action: &'static str, reason: String) -> crate::SettlementError {
    crate::SettlementError::Staking { action, reason }
}

use crate::{BatchStatus, SettlementLayer, SlEvent};
use braid_proof::ProofError;

impl SettlementLayer {
    pub(crate) fn join_validators(
        &mut self,
        from: Address,
        req: &JoinRequest,
        events: &mut Vec<SlEvent>,
    ) -> Result<(), crate::SettlementError> {
        const ACTION: &str = "joinValidators";
        if req.stake.is_zero() || req.stake < self.config.min_stake {
            return Err(err(
                ACTION,
                format!(
                    "stake {} is below the minimum {}",
                    req.stake, self.config.min_stake
                ),
            ));
        }
        if let Some(r) = self.staking.validators.get(&from) {
            if r.status != StakeStatus::Withdrawn {
                return Err(err(ACTION, format!("{from} is already a validator")));
            }
        }
        if self
            .staking
            .validators
            .iter()
            .any(|(a, r)| *a != from && r.pubkey == req.pubkey)
        {
            return Err(err(ACTION, "the BLS key is already registered".into()));
        }
        req.pubkey
            .verify_pop(&req.pop)
            .map_err(|e| err(ACTION, format!("proof of possession: {e}")))?;
        let available = self.balance(&from);
        if available < req.stake {
            return Err(err(
                ACTION,
                format!("{from} holds {available}, cannot stake {}", req.stake),
            ));
        }
        self.balances.insert(from, available - req.stake);
        self.staking.staked = self.staking.staked.saturating_add(req.stake);
        self.staking.validators.insert(
            from,
            StakeRecord {
                pubkey: req.pubkey,
                stake: req.stake,
                status: StakeStatus::Active,
            },
        );
        events.push(SlEvent::ValidatorJoined {
            validator: from,
            stake: req.stake,
        });
        Ok(())
    }

    pub(crate) fn exit_validators(
        &mut self,
        from: Address,
        events: &mut Vec<SlEvent>,
    ) -> Result<(), crate::SettlementError> {
        let now = self.now_ms;
        match self.staking.validators.get_mut(&from) {
            Some(r) if r.status == StakeStatus::Active => {
                r.status = StakeStatus::Exiting { since_ms: now };
                events.push(SlEvent::ValidatorExiting { validator: from });
                Ok(())
            }
            _ => Err(err(
                "exitValidators",
                format!("{from} is not an active validator"),
            )),
        }
    }

    pub(crate) fn withdraw_stake(&mut self, from: Address) -> Result<(), crate::SettlementError> {
        let now = self.now_ms;
        let unbonding = self.config.unbonding_ms;
        let Some(r) = self.staking.validators.get_mut(&from) else {
            return Err(err("withdrawStake", format!("{from} is not a validator")));
        };
        let StakeStatus::Exiting { since_ms } = r.status else {
            return Err(err("withdrawStake", format!("{from} has not exited")));
        };
        if now < since_ms.saturating_add(unbonding) {
            return Err(err(
                "withdrawStake",
                format!(
                    "unbonding until {} ms (now {now} ms)",
                    since_ms.saturating_add(unbonding)
                ),
            ));
        }
        let stake = std::mem::take(&mut r.stake);
        r.status = StakeStatus::Withdrawn;
        self.staking.staked = self.staking.staked.saturating_sub(stake);
        let b = self.balances.entry(from).or_default();
        *b = b.saturating_add(stake);
        Ok(())
    }

    pub(crate) fn postconfirm(
        &mut self,
        qc: &QuorumCertificate,
        header: &BlockHeader,
        events: &mut Vec<SlEvent>,
    ) -> Result<(), crate::SettlementError> {
        const ACTION: &str = "postconfirm";
        if !self.chains.contains_key(&header.chainId) {
            return Err(crate::SettlementError::UnknownChain(header.chainId));
        }
        // only QCs of the current or the previous epoch: an older set's validators may have
        // exited and withdrawn, so their signatures are no longer backed by slashable stake
        let current = self.epoch_at(self.now_ms);
        let oldest = current.saturating_sub(1);
        if qc.vote.epoch < oldest {
            return Err(crate::SettlementError::StaleQc {
                epoch: qc.vote.epoch,
                oldest,
                current,
            });
        }
        let record = self
            .staking
            .check_postconfirm(qc, header)
            .map_err(|reason| err(ACTION, reason))?;
        let per_chain = self
            .staking
            .postconfirmed
            .entry(header.chainId)
            .or_default();
        if let Some(existing) = per_chain.get(&header.number) {
            if existing.block_hash != record.block_hash {
                return Err(err(
                    ACTION,
                    format!(
                        "block {} of chain {} is already postconfirmed with another hash",
                        header.number, header.chainId
                    ),
                ));
            }
            return Ok(()); // the same block again: nothing new
        }
        per_chain.insert(header.number, record);
        events.push(SlEvent::Postconfirmed {
            chain: header.chainId,
            height: header.number,
            block_hash: record.block_hash,
            epoch: record.epoch,
        });
        Ok(())
    }

    /// Re-executes the committed batch holding the voted block; slashes the voter if the block
    /// (or an earlier block of the batch it builds on) is invalid.
    pub(crate) fn report_invalid_accept(
        &mut self,
        reporter: Address,
        vote: &SignedVote,
        events: &mut Vec<SlEvent>,
    ) -> Result<(), crate::SettlementError> {
        const ACTION: &str = "reportInvalidAccept";
        let signer = self
            .staking
            .check_vote_signer(vote)
            .map_err(|reason| err(ACTION, reason))?;
        let (chain_id, height, hash) = (vote.vote.chainId, vote.vote.height, vote.vote.blockHash);
        if !self.staking.invalid_blocks.contains(&(chain_id, hash)) {
            let chain = self
                .chains
                .get(&chain_id)
                .ok_or(crate::SettlementError::UnknownChain(chain_id))?;
            let rec = chain
                .batches
                .range(chain.last_executed + 1..)
                .map(|(_, b)| b)
                .find(|b| b.header.firstBlock <= height && height <= b.header.lastBlock)
                .ok_or_else(|| {
                    err(
                        ACTION,
                        format!("block {height} is in no unexecuted committed batch"),
                    )
                })?;
            let offset = (height - rec.header.firstBlock) as usize;
            if rec.blocks.get(offset).map(|b| b.header.hash()) != Some(hash) {
                return Err(err(
                    ACTION,
                    "the voted block is not the committed one".into(),
                ));
            }
            if rec.status != BatchStatus::Committed {
                return Err(err(ACTION, "the batch holding the block is proven".into()));
            }
            let claim = chain
                .claim(rec)
                .ok_or_else(|| err(ACTION, "the batch's predecessor is unknown".into()))?;
            let first_invalid = match self.proofs.verify(&claim, &[]) {
                Err(ProofError::InvalidBlock { number, .. }) if number <= height => number,
                Err(ProofError::UnknownPreState { .. }) => {
                    return Err(err(
                        ACTION,
                        "the batch before it is not proven yet; report again later".into(),
                    ))
                }
                _ => {
                    return Err(err(
                        ACTION,
                        format!("block {height} of chain {chain_id} re-executes correctly"),
                    ))
                }
            };
            let invalid: Vec<B256> = rec
                .blocks
                .iter()
                .filter(|b| b.header.number >= first_invalid)
                .map(|b| b.header.hash())
                .collect();
            for h in invalid {
                self.staking.invalid_blocks.insert((chain_id, h));
            }
        }
        self.apply_slash(signer, SlashReason::InvalidAccept, reporter, events);
        Ok(())
    }

    pub(crate) fn apply_slash(
        &mut self,
        validator: Address,
        reason: SlashReason,
        reporter: Address,
        events: &mut Vec<SlEvent>,
    ) {
        let (reward, burned) = self
            .staking
            .slash(&validator, self.config.reporter_share_percent);
        let b = self.balances.entry(reporter).or_default();
        *b = b.saturating_add(reward);
        events.push(SlEvent::Slashed {
            validator,
            reason,
            reward,
            burned,
            reporter,
        });
    }
}
