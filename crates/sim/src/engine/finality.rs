//! Fast-finality settlement in the simulator (seed 002): validators re-executing every block
//! (`braid_validator::Validator`), vote collection into QCs (`braid_finality::VoteAggregator`,
//! leader-based or leader-free), DA nodes and availability certificates, the relayer told of
//! L2-final blocks, postconfirmation on the SL, slashing reports, and Byzantine validators.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{keccak256, Address, B256, U256};
use braid_execution::{ChainState, TxSigner};
use braid_finality::{
    AggregatorOutput, BlsSecretKey, DaAttestation, DaCommittee, DaNode, Evidence,
    MemorySlashingProtection, QuorumCertificate, SignedVote, ValidatorSigner, Vote, VoteAggregator,
};
use braid_primitives::{Block, BlockHeader, BlockNumber, ChainId};
use braid_relayer::RelayerInput;
use braid_settlement::{JoinRequest, SlCall, SlEvent, SlTx, SlashReason};
use braid_validator::{BlockVerdict, Validator};

use super::{Delivery, Event, Sim};
use crate::net::{Class, Role};
use crate::report::{FinalityReport, LatencyStats, SlashRecord};
use crate::scenario::{Aggregation, Behaviour, FinalitySpec};

/// One simulated validator.
pub(super) struct SimValidator {
    core: Validator<MemorySlashingProtection>,
    /// The same BLS key, for the adversarial signatures the core refuses to make.
    bls: BlsSecretKey,
    sl: TxSigner,
    behaviour: Option<Behaviour>,
    /// Index in the current epoch's set.
    index: Option<u32>,
}

/// What the simulator knows of one certified block.
#[derive(Debug, Clone)]
struct Certified {
    qc: QuorumCertificate,
    collector: u32,
    attestations: Vec<DaAttestation>,
    final_at: Option<u64>,
    postconfirm_submitted: bool,
}

/// The finality network of a run.
pub(super) struct Finality {
    spec: FinalitySpec,
    validators: Vec<SimValidator>,
    /// Per collector (leader-based: only the leader's is used).
    aggregators: Vec<VoteAggregator>,
    da: Vec<DaNode>,
    committee: DaCommittee,
    /// Headers of every block produced, with their production time.
    headers: BTreeMap<(ChainId, B256), BlockHeader>,
    /// Certified blocks by (chain, height).
    certified: BTreeMap<(ChainId, BlockNumber), Certified>,
    /// Blocks the simulator knows invalid (tampered), by hash.
    invalid: BTreeSet<(ChainId, B256)>,
    /// Accept votes seen for invalid blocks, to report once the SL can judge them.
    invalid_accepts: BTreeMap<(u32, B256), SignedVote>,
    /// Validators already reported for equivocation.
    equivocation_reported: BTreeSet<u32>,
    /// Slashed SL addresses.
    slashed: BTreeSet<Address>,
    postconfirmer: TxSigner,
    stats: FinalityReport,
    final_latency: Vec<u64>,
    qc_latency: Vec<u64>,
    postconfirm_latency: Vec<u64>,
}

fn bls_key(i: u32) -> Result<BlsSecretKey, String> {
    BlsSecretKey::from_seed(keccak256(format!("braid sim validator {i}")).as_slice())
        .map_err(|e| e.to_string())
}

fn da_key(i: u32) -> Result<BlsSecretKey, String> {
    BlsSecretKey::from_seed(keccak256(format!("braid sim da node {i}")).as_slice())
        .map_err(|e| e.to_string())
}

/// SL account of validator `i`.
fn sl_key(i: u32) -> TxSigner {
    TxSigner::dev(3_000_000 + i)
}

impl Finality {
    pub(super) fn new(
        spec: &FinalitySpec,
        genesis: &[(BlockHeader, ChainState)],
    ) -> Result<Self, String> {
        let mut validators = Vec::new();
        for i in 0..spec.validators {
            let bls = bls_key(i)?;
            let mut core = Validator::new(ValidatorSigner::new(
                bls_key(i)?,
                0,
                MemorySlashingProtection::new(),
            ));
            for (header, state) in genesis {
                core.add_chain(header, state.clone());
            }
            validators.push(SimValidator {
                core,
                bls,
                sl: sl_key(i),
                behaviour: spec.behaviour(i),
                index: None,
            });
        }
        let mut da = Vec::new();
        for i in 0..spec.da_nodes {
            da.push(DaNode::new(da_key(i)?, i));
        }
        let committee = DaCommittee {
            nodes: da.iter().map(DaNode::public_key).collect(),
        };
        let stats = FinalityReport {
            validators: spec.validators,
            da_nodes: spec.da_nodes,
            aggregation: match spec.aggregation {
                Aggregation::LeaderBased => "leader_based".into(),
                Aggregation::LeaderFree => "leader_free".into(),
            },
            byzantine: spec
                .byzantine
                .iter()
                .map(|b| (b.validator, b.behaviour.name().to_string()))
                .collect(),
            ..FinalityReport::default()
        };
        Ok(Self {
            spec: spec.clone(),
            validators,
            aggregators: Vec::new(),
            da,
            committee,
            headers: BTreeMap::new(),
            certified: BTreeMap::new(),
            invalid: BTreeSet::new(),
            invalid_accepts: BTreeMap::new(),
            equivocation_reported: BTreeSet::new(),
            slashed: BTreeSet::new(),
            postconfirmer: TxSigner::dev(3_999_999),
            stats,
            final_latency: Vec::new(),
            qc_latency: Vec::new(),
            postconfirm_latency: Vec::new(),
        })
    }

    /// SL balances the validators stake from.
    pub(super) fn genesis_balances(spec: &FinalitySpec) -> Vec<(Address, U256)> {
        (0..spec.validators)
            .map(|i| (sl_key(i).address(), U256::from(spec.stake(i))))
            .collect()
    }

    /// The validators' `joinValidators` transactions (nonce 0).
    pub(super) fn join_txs(&self) -> Result<Vec<SlTx>, String> {
        self.validators
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let call = SlCall::JoinValidators(JoinRequest {
                    pubkey: v.bls.public_key(),
                    pop: v.bls.proof_of_possession(),
                    stake: U256::from(self.spec.stake(i as u32)),
                });
                SlTx::sign_with(&v.sl, 0, call).map_err(|e| e.to_string())
            })
            .collect()
    }

    fn collectors(&self) -> Vec<u32> {
        match self.spec.aggregation {
            Aggregation::LeaderBased => vec![0],
            Aggregation::LeaderFree => (0..self.spec.validators).collect(),
        }
    }

    /// The report section.
    pub(super) fn report(&self) -> FinalityReport {
        let mut r = self.stats.clone();
        r.blocks_final = self
            .certified
            .values()
            .filter(|c| c.final_at.is_some())
            .count() as u64;
        r.blocks_certified = self.certified.len() as u64;
        r.time_to_qc_ms = LatencyStats::of(&self.qc_latency);
        r.time_to_l2_final_ms = LatencyStats::of(&self.final_latency);
        r.time_to_postconfirmation_ms = LatencyStats::of(&self.postconfirm_latency);
        r
    }
}

/// A fabricated conflicting block hash for an equivocating validator.
fn twin_hash(hash: B256) -> B256 {
    keccak256([hash.as_slice(), b"twin"].concat())
}

impl Sim<'_> {
    /// A block was produced: every validator receives it (tampered if the batch it closes is).
    pub(super) fn finality_block(&mut self, chain: ChainId, block: &Block, invalid: bool) {
        let Some(f) = self.finality.as_mut() else {
            return;
        };
        let hash = block.header.hash();
        f.headers.insert((chain, hash), block.header.clone());
        f.stats.blocks_seen += 1;
        if invalid {
            f.invalid.insert((chain, hash));
            f.stats.invalid_blocks_proposed += 1;
        }
        let n = f.validators.len() as u32;
        for i in 0..n {
            let d = Delivery::ValidatorBlock {
                validator: i,
                block: block.clone(),
            };
            self.send(Role::Sequencer(chain), Role::Validator(i), Class::Feed, d);
        }
    }

    /// A validator received a block: re-execute, vote (or misbehave), send the votes.
    pub(super) fn validator_block(&mut self, i: u32, block: Block) {
        let Some(f) = self.finality.as_mut() else {
            return;
        };
        let collectors = f.collectors();
        let Some(v) = f.validators.get_mut(i as usize) else {
            return;
        };
        let verdict = match v.core.on_block(&block) {
            Ok(verdict) => verdict,
            Err(_) => {
                f.stats.blocks_not_voted += 1;
                return;
            }
        };
        let Some(index) = v.index else {
            return;
        };
        let mut votes: Vec<SignedVote> = Vec::new();
        let h = &block.header;
        let honest_vote = match verdict {
            BlockVerdict::Voted(v) => Some(*v),
            BlockVerdict::Silent { .. } => None,
        };
        let sign = |v: &SimValidator, vote: Vote| SignedVote {
            signature: v.bls.sign_vote(&vote),
            vote,
            validator: index,
        };
        match v.behaviour {
            None => votes.extend(honest_vote),
            Some(Behaviour::Withhold) => {
                if honest_vote.is_some() {
                    f.stats.votes_withheld += 1;
                }
            }
            Some(Behaviour::AcceptInvalid) => match honest_vote {
                Some(mut hv) if !hv.vote.accept => {
                    hv.vote.accept = true;
                    votes.push(sign(v, hv.vote));
                }
                other => votes.extend(other),
            },
            Some(Behaviour::Equivocate) => {
                if let Some(hv) = honest_vote {
                    let mut twin = hv.vote.clone();
                    twin.blockHash = twin_hash(h.hash());
                    twin.accept = true;
                    votes.push(hv);
                    votes.push(sign(v, twin));
                }
            }
        }
        for vote in votes {
            for &c in &collectors {
                let d = Delivery::Vote {
                    collector: c,
                    vote: vote.clone(),
                };
                self.send(Role::Validator(i), Role::Validator(c), Class::Datagram, d);
            }
        }
    }

    /// A collector received a vote.
    pub(super) fn collector_vote(&mut self, c: u32, vote: SignedVote) -> Result<(), String> {
        let now = self.now;
        let Some(f) = self.finality.as_mut() else {
            return Ok(());
        };
        let chain = vote.vote.chainId;
        if vote.vote.accept && f.invalid.contains(&(chain, vote.vote.blockHash)) {
            f.invalid_accepts
                .entry((vote.validator, vote.vote.blockHash))
                .or_insert_with(|| vote.clone());
        }
        let Some(agg) = f.aggregators.get_mut(c as usize) else {
            return Ok(());
        };
        let outputs = match agg.add(vote) {
            Ok(o) => o,
            Err(_) => {
                f.stats.votes_refused += 1;
                return Ok(());
            }
        };
        let mut to_da = Vec::new();
        let mut evidence = Vec::new();
        for o in outputs {
            match o {
                AggregatorOutput::Certified(qc) => {
                    let key = (qc.vote.chainId, qc.vote.height);
                    if f.invalid.contains(&(qc.vote.chainId, qc.vote.blockHash)) {
                        self.invariants.pending.get_or_insert((
                            "no_invalid_block_certified",
                            format!(
                                "block {} of chain {} is invalid but was certified by {:?}",
                                qc.vote.height,
                                qc.vote.chainId,
                                qc.signer_indices()
                            ),
                        ));
                    }
                    match f.certified.get(&key) {
                        Some(prev) if prev.qc.vote.blockHash != qc.vote.blockHash => {
                            self.invariants.pending.get_or_insert((
                                "no_conflicting_qcs",
                                format!(
                                    "two QCs at height {} of chain {}: {} and {}",
                                    key.1, key.0, prev.qc.vote.blockHash, qc.vote.blockHash
                                ),
                            ));
                        }
                        Some(_) => {} // leader-free: another collector got there first
                        None => {
                            if let Some(header) =
                                f.headers.get(&(qc.vote.chainId, qc.vote.blockHash))
                            {
                                f.qc_latency.push(now.saturating_sub(header.timestampMs));
                            }
                            f.certified.insert(
                                key,
                                Certified {
                                    qc: qc.clone(),
                                    collector: c,
                                    attestations: Vec::new(),
                                    final_at: None,
                                    postconfirm_submitted: false,
                                },
                            );
                            to_da.push(qc);
                        }
                    }
                }
                AggregatorOutput::Equivocation(e) => {
                    f.stats.equivocations_detected += 1;
                    let Evidence::Equivocation { a, .. } = &e;
                    if f.equivocation_reported.insert(a.validator) {
                        evidence.push(e);
                    }
                }
            }
        }
        let nodes = f.da.len() as u32;
        for qc in to_da {
            for n in 0..nodes {
                let d = Delivery::QcToDa {
                    collector: c,
                    node: n,
                    qc: qc.clone(),
                };
                self.send(Role::Validator(c), Role::Da(n), Class::Datagram, d);
            }
        }
        for e in evidence {
            self.finality_submit(SlCall::ReportEquivocation(e))?;
        }
        Ok(())
    }

    /// A DA node stores a QC and attests.
    pub(super) fn da_store(&mut self, collector: u32, node: u32, qc: QuorumCertificate) {
        let Some(f) = self.finality.as_mut() else {
            return;
        };
        let Some(da) = f.da.get_mut(node as usize) else {
            return;
        };
        let attestation = da.store(qc);
        let d = Delivery::DaAttested { attestation };
        self.send(
            Role::Da(node),
            Role::Validator(collector),
            Class::Datagram,
            d,
        );
    }

    /// A collector received a DA attestation: the block is L2-final once the DA committee
    /// certified availability.
    pub(super) fn da_attested(&mut self, attestation: DaAttestation) {
        let now = self.now;
        let Some(f) = self.finality.as_mut() else {
            return;
        };
        let Some((key, rec)) = f
            .certified
            .iter_mut()
            .find(|(_, c)| c.qc.hash() == attestation.qc_hash)
        else {
            return;
        };
        let key = *key;
        if rec.final_at.is_some() {
            return;
        }
        rec.attestations.push(attestation);
        if f.committee.certify(&rec.attestations).is_err() {
            return;
        }
        rec.final_at = Some(now);
        let collector = rec.collector;
        if let Some(header) = f.headers.get(&(key.0, rec.qc.vote.blockHash)) {
            f.final_latency.push(now.saturating_sub(header.timestampMs));
        }
        let d = Delivery::Certified {
            chain: key.0,
            height: key.1,
            block_hash: rec.qc.vote.blockHash,
        };
        self.send(Role::Validator(collector), Role::Relayer, Class::Feed, d);
    }

    /// The relayer hears of an L2-final block.
    pub(super) fn relayer_certified(
        &mut self,
        chain: ChainId,
        height: BlockNumber,
        block_hash: B256,
    ) {
        let effects = self.relayer.handle(
            self.now,
            RelayerInput::Certified {
                chain,
                height,
                block_hash,
            },
        );
        self.relayer_effects(effects);
    }

    /// Posts the QC of block `height` of `chain` to the SL, once.
    pub(super) fn postconfirm(
        &mut self,
        chain: ChainId,
        height: BlockNumber,
    ) -> Result<(), String> {
        let Some(f) = self.finality.as_mut() else {
            return Ok(());
        };
        let Some(rec) = f.certified.get_mut(&(chain, height)) else {
            return Ok(());
        };
        if rec.postconfirm_submitted {
            return Ok(());
        }
        let Some(header) = f.headers.get(&(chain, rec.qc.vote.blockHash)).cloned() else {
            return Ok(());
        };
        rec.postconfirm_submitted = true;
        let qc = rec.qc.clone();
        self.finality_submit(SlCall::Postconfirm { qc, header })
    }

    /// Every `postconfirm_interval_ms`: the latest L2-final QC of each chain goes to the SL.
    pub(super) fn postconfirm_tick(&mut self) -> Result<(), String> {
        let Some(f) = self.finality.as_ref() else {
            return Ok(());
        };
        let interval = f.spec.postconfirm_interval_ms;
        let mut latest: BTreeMap<ChainId, BlockNumber> = BTreeMap::new();
        for ((chain, height), c) in &f.certified {
            if c.final_at.is_some() {
                latest.insert(*chain, *height);
            }
        }
        for (chain, height) in latest {
            self.postconfirm(chain, height)?;
        }
        let next = self.now + interval;
        self.schedule(next, Event::PostconfirmTick);
        // invalid accepts the SL can judge now (the batch holding the block is committed)
        self.report_invalid_accepts()
    }

    pub(super) fn report_invalid_accepts(&mut self) -> Result<(), String> {
        let Some(f) = self.finality.as_mut() else {
            return Ok(());
        };
        let mut calls = Vec::new();
        let mut done = Vec::new();
        for ((validator, hash), vote) in &f.invalid_accepts {
            let signer = f
                .validators
                .iter()
                .find(|v| v.index == Some(*validator))
                .map(|v| v.sl.address());
            if signer.is_some_and(|a| f.slashed.contains(&a)) {
                done.push((*validator, *hash));
                continue;
            }
            let chain = vote.vote.chainId;
            let judged = self.sl.chain(chain).is_some_and(|c| {
                c.batches.range(c.last_executed + 1..).any(|(_, b)| {
                    b.header.firstBlock <= vote.vote.height
                        && vote.vote.height <= b.header.lastBlock
                        && b.blocks.iter().any(|blk| blk.header.hash() == *hash)
                })
            });
            if judged {
                calls.push(SlCall::ReportInvalidAccept(vote.clone()));
            }
        }
        for k in done {
            f.invalid_accepts.remove(&k);
        }
        for call in calls {
            self.finality_submit(call)?;
        }
        Ok(())
    }

    /// Signs a finality call with the postconfirmer's key and submits it to the SL.
    fn finality_submit(&mut self, call: SlCall) -> Result<(), String> {
        let Some(signer) = self.finality.as_ref().map(|f| f.postconfirmer.clone()) else {
            return Ok(());
        };
        self.submit_signed(&signer, call).map(|_| ())
    }

    /// SL events the finality network follows.
    pub(super) fn finality_sl_event(&mut self, e: &SlEvent) {
        let now = self.now;
        let Some(f) = self.finality.as_mut() else {
            return;
        };
        match e {
            SlEvent::EpochStarted { epoch, .. } => {
                let Some(set) = self.sl.staking().set(*epoch).cloned() else {
                    return;
                };
                f.stats.epochs += 1;
                for v in &mut f.validators {
                    v.index = set.index_of(&v.sl.address());
                    v.core.set_epoch(*epoch, v.index);
                }
                let collectors = f.collectors().len().max(1);
                f.aggregators = (0..f.spec.validators.max(collectors as u32))
                    .map(|_| VoteAggregator::new(set.clone()))
                    .collect();
            }
            SlEvent::Postconfirmed { chain, height, .. } => {
                f.stats.postconfirmations += 1;
                if let Some(rec) = f.certified.get(&(*chain, *height)) {
                    if let Some(h) = f.headers.get(&(*chain, rec.qc.vote.blockHash)) {
                        f.postconfirm_latency
                            .push(now.saturating_sub(h.timestampMs));
                    }
                }
            }
            SlEvent::Slashed {
                validator, reason, ..
            } => {
                f.slashed.insert(*validator);
                let index = f
                    .validators
                    .iter()
                    .position(|v| v.sl.address() == *validator)
                    .map_or(u32::MAX, |i| i as u32);
                f.stats.slashes.push(SlashRecord {
                    at_ms: now,
                    validator: index,
                    reason: match reason {
                        SlashReason::Equivocation => "equivocation".into(),
                        SlashReason::InvalidAccept => "invalid_accept".into(),
                    },
                });
            }
            SlEvent::BatchExecuted { chain, batch, .. } => {
                if let Some(rec) = self.sl.batch(*chain, *batch) {
                    let (last, hash) = (rec.header.lastBlock, rec.header.lastBlockHash);
                    for v in &mut f.validators {
                        v.core.finalized(*chain, last, hash);
                    }
                    for agg in &mut f.aggregators {
                        agg.prune(*chain, last.saturating_sub(1));
                    }
                }
            }
            _ => {}
        }
    }
}
