//! The discrete-event engine: a queue of `(virtual time, sequence number, event)` driving the
//! real cores, wired like the devnet (`braid_node::world::Devnet::step`) but with a network
//! between the roles.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::SolCall;
use braid_driver::{
    route, ChainEffect, ChainRole, Destinations, LocalChain, LocalChains, RelayerEffect,
    RelayerRole, WatchedSources,
};
use braid_execution::{TxReceipt, TxSigner};
use braid_operator::{Operator, OperatorConfig};
use braid_primitives::{
    BatchHeader, BatchNumber, Block, BlockNumber, ChainId, IMessenger, ImportedRoot, Message,
    MessageId, MessageProof, MESSENGER_ADDRESS,
};
use braid_proof::ReExecution;
use braid_relayer::{
    execute_message_calldata, Relayer, RelayerAction, RelayerConfig, RelayerInput,
};
use braid_sequencer::{SealedBlock, Sequencer, SequencerConfig, SequencerInput, SequencerOutput};
use braid_settlement::{
    Authority, ChainGenesis, RevertCause, SettlementError, SettlementLayer, SlCall, SlConfig,
    SlEvent, SlInput, SlTx,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod aggregated;
mod deposits;
mod finality;
#[cfg(test)]
mod invariants_fire;
mod liveness;
mod optimistic;

use crate::invariants::{Execution, Invariants};
use crate::net::{Class, Network, Role};
use crate::report::{
    AdversaryReport, BatchExecution, ChainReport, CouncilReport, FaultRecord, LatencyStats,
    ModeReport, NetworkReport, RelayerReport, Report, RevertRecord, RevertReport, Violation,
};
use crate::scenario::{Fault, Mode, Scenario};
use crate::SimError;

/// Balance of every funded account on every chain (10 000 ETH).
fn dev_balance() -> U256 {
    U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18u64))
}

fn council_key() -> Result<TxSigner, SimError> {
    TxSigner::from_secret(keccak256(b"braid sim security council"))
        .map_err(|e| SimError::Core(e.to_string()))
}

fn operator_key(chain: ChainId) -> Result<TxSigner, SimError> {
    TxSigner::from_secret(keccak256(format!("braid sim operator {chain}").as_bytes()))
        .map_err(|e| SimError::Core(e.to_string()))
}

/// Most relayer errors kept as text in the report.
const ERROR_SAMPLES: usize = 10;

/// Executions remembered per destination for the adversary to replay or forge.
const ADVERSARY_SAMPLES: usize = 8;

/// The adversary's funded account on every chain.
fn adversary_key() -> TxSigner {
    TxSigner::dev(2_000_000)
}

fn kind_of(error: &impl std::fmt::Debug) -> String {
    let debug = format!("{error:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_string()
}

/// What an adversarial transaction tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attack {
    Replay,
    Forgery,
}

impl Attack {
    fn name(self) -> &'static str {
        match self {
            Attack::Replay => "replay",
            Attack::Forgery => "forgery",
        }
    }
}

/// The wrong-state-root tampering of `e2e::a_batch_with_a_wrong_state_root_is_never_proven_and_is_reverted`:
/// the last block's `stateRoot` and the header's, with the block hash and DA commitment kept
/// consistent so the SL accepts the commit.
fn tamper_state_root(batch: &mut braid_sequencer::SealedBatch) {
    let wrong = B256::repeat_byte(0xee);
    if let Some(last) = batch.blocks.last_mut() {
        last.header.stateRoot = wrong;
        batch.header.lastBlockHash = last.header.hash();
    }
    batch.header.stateRoot = wrong;
    batch.header.daCommitment = braid_primitives::da_commitment(&batch.blocks);
}

/// A sequencer as its node resumes after a crash ([`Sequencer::restarted`]): what it persisted
/// (blocks, the state at each batch end not final yet), with an empty pool.
fn restored(seq: &Sequencer) -> Sequencer {
    seq.restarted()
}

/// Runs `scenario` with `seed` to the end of its duration (or the first invariant violation)
/// and reports. Errors only for invalid scenarios and cores that refuse to start; everything
/// that goes wrong during the run is in the report.
pub fn run(scenario: &Scenario, seed: u64) -> Result<Report, SimError> {
    run_with_progress(scenario, seed, &mut |_, _| {})
}

/// As [`run`], calling `progress(virtual_now_ms, duration_ms)` every 10 000 events (for
/// progress bars on long runs).
pub fn run_with_progress(
    scenario: &Scenario,
    seed: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Report, SimError> {
    scenario.validate()?;
    let wall = Instant::now();
    let mut sim = Sim::new(scenario, seed)?;
    let end = scenario.run_end_ms();
    sim.run_loop(end, progress);
    sim.check_liveness();
    progress(end, end);
    Ok(sim.report(wall.elapsed().as_millis() as u64))
}

/// A snapshot in the middle of a run: runs `scenario` with `seed` up to virtual time
/// `until_ms` and reports the state there. Safety invariants are checked after every event as
/// in [`run`]; liveness is not judged (the drain window has not passed), so the report's
/// `liveness` section is empty. For tests and studies of what a fault does while it lasts.
pub fn run_until(scenario: &Scenario, seed: u64, until_ms: u64) -> Result<Report, SimError> {
    scenario.validate()?;
    let wall = Instant::now();
    let mut sim = Sim::new(scenario, seed)?;
    sim.run_loop(until_ms, &mut |_, _| {});
    Ok(sim.report(wall.elapsed().as_millis() as u64))
}

/// A timer or a delivery.
#[derive(Debug)]
enum Event {
    SeqTick(ChainId),
    SlTick,
    OperatorTick(ChainId),
    RelayerTick,
    Traffic(usize),
    FaultStart(usize),
    FaultEnd(usize),
    Deliver(Box<Delivery>),
    PostconfirmTick,
    /// Deposit stream `i` queues its next SL deposit.
    Deposit(usize),
    /// The aggregator looks for checkpoints to prove.
    AggregatorTick,
    /// An aggregator finished proving `level` of `checkpoint`.
    AggregatorLevel {
        generation: u32,
        checkpoint: u64,
        level: u8,
        snapshot: std::sync::Arc<braid_aggregator::TreeSnapshot>,
    },
    /// An aggregator finished a root proof.
    AggregatorRoot {
        generation: u32,
        epoch: u32,
        checkpoint: u64,
        proof: std::sync::Arc<braid_aggregator::ReexecProof>,
    },
    /// The successor aggregator takes over.
    AggregatorTakeover,
    /// Forged tree import `i` reaches its sequencer.
    ForgeImport(usize),
}

/// A message arriving at a role.
#[derive(Debug)]
enum Delivery {
    /// Users → sequencer: a user's `sendMessageWithMode` (signed on arrival, see docs).
    UserTx { chain: ChainId, traffic: usize },
    /// Sequencer → relayer (feed).
    Block {
        chain: ChainId,
        block: Block,
        receipts: Vec<TxReceipt>,
    },
    /// Sequencer → relayer (feed).
    BatchSealed { header: BatchHeader },
    /// Relayer → sequencer: resend the chain's blocks from `from` (and their batch headers).
    Backfill { chain: ChainId, from: BlockNumber },
    /// Relayer → SL: resend the relayer's events of SL blocks `from..=to`.
    BackfillSl { from: u64, to: u64 },
    /// Operator → SL: the calls of one operator tick, in order (one connection: they arrive
    /// together and in order; each is signed on arrival with the operator's key, see docs).
    SlCalls { chain: ChainId, calls: Vec<SlCall> },
    /// SL → relayer (feed): the events of one SL block.
    SlToRelayer(Vec<SlEvent>),
    /// SL → an operator (feed): the events of one SL block routed to its chain.
    SlToOperator {
        chain: ChainId,
        height: u64,
        events: Vec<SlEvent>,
    },
    /// Operator → SL: resend the chain's events of SL blocks `from..=to`.
    OperatorBackfillSl { chain: ChainId, from: u64, to: u64 },
    /// Relayer → sequencer, with the source epoch the relayer was at.
    Import {
        dest: ChainId,
        root: ImportedRoot,
        epoch: u64,
    },
    /// Relayer → sequencer: `executeMessage` (signed on arrival with the relayer's key).
    Execute {
        dest: ChainId,
        message: Message,
        proof: MessageProof,
    },
    /// Sequencer → relayer: the execution transaction for `id` was dropped or refused.
    ExecuteDropped { id: MessageId },
    /// Sequencer → relayer: an import was refused.
    ImportRejected { dest: ChainId, root: ImportedRoot },
    /// Sequencer → validator (feed): a block to re-execute and vote on.
    ValidatorBlock { validator: u32, block: Block },
    /// Validator → collector: a vote.
    Vote {
        collector: u32,
        vote: braid_finality::SignedVote,
    },
    /// Collector → DA node: a QC to store.
    QcToDa {
        collector: u32,
        node: u32,
        qc: braid_finality::QuorumCertificate,
    },
    /// DA node → collector: an availability attestation.
    DaAttested {
        attestation: braid_finality::DaAttestation,
    },
    /// Aggregator → relayer (feed): a tree level is proven.
    TreeLevel {
        checkpoint: u64,
        level: u8,
        snapshot: std::sync::Arc<braid_aggregator::TreeSnapshot>,
    },
    /// Aggregator → SL: a call (signed on arrival with that aggregator's key).
    AggregatorCall { generation: u32, call: SlCall },
    /// Collector → relayer (feed): a block is L2-final.
    Certified {
        chain: ChainId,
        height: BlockNumber,
        block_hash: B256,
    },
}

/// One chain: its sequencer and its operator (co-located: sealed batches and the operator's
/// revert/finality actions pass between them directly).
struct ChainNode {
    /// The chain node's protocol half (sequencer + operator + SL view), as every shell runs it.
    role: ChainRole,
    operator_key: TxSigner,
    stalled_until: u64,
    /// When the operator saw each of its batches committed (for the modelled proving delay).
    committed_seen: BTreeMap<u64, u64>,
    /// While `now < down_until` the node is crashed.
    down_until: u64,
    /// SL events for the operator that arrived while the node was down (the feed resumes on
    /// restart).
    held: Vec<(u64, Vec<SlEvent>)>,
    /// `wrong_state_root`: tamper the next sealed batch (fault index).
    tamper_next: Option<usize>,
    /// `equivocation`: equivocate at the next block (fault index).
    equivocate_next: Option<usize>,
    /// `censor_deposits`: deposits are held back from the sequencer until then.
    censor_until: u64,
    /// Deposits held back by censorship.
    censored: Vec<braid_primitives::Deposit>,
    stats: ChainReport,
}

impl ChainNode {
    fn down(&self, now: u64) -> bool {
        now < self.down_until
    }
}

impl LocalChain for ChainNode {
    fn chain_role(&self) -> &ChainRole {
        &self.role
    }
    fn chain_role_mut(&mut self) -> &mut ChainRole {
        &mut self.role
    }
    fn answers(&self, now_ms: u64) -> bool {
        !self.down(now_ms)
    }
}

/// What a chain's sequencer sealed, for backfills (see `Sim::feed_log`).
#[derive(Debug, Default)]
struct FeedLog {
    blocks: BTreeMap<BlockNumber, (Block, Vec<TxReceipt>)>,
    headers: BTreeMap<BatchNumber, BatchHeader>,
}

/// A message the simulator follows for the report.
#[derive(Debug, Clone)]
struct Track {
    /// The user transaction that sent it (after a revert, another may send the same id).
    tx: B256,
    mode: Mode,
    dest: ChainId,
    sent_at: u64,
    /// The source block holding it; `None` while a roll-back of its source discarded it and
    /// the re-sequenced chain has not included its transaction again (never, if the pool lost
    /// it): such a message was not sent, and no batch settles it.
    source_block: Option<BlockNumber>,
    executed_at: Option<u64>,
    settled_at: Option<u64>,
}

struct Sim<'a> {
    scenario: &'a Scenario,
    seed: u64,
    rng: ChaCha8Rng,
    now: u64,
    next_seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    net: Network,
    sl: SettlementLayer,
    /// Transactions pooled on the SL since its last block, by sender (for nonces).
    sl_pooled: BTreeMap<Address, u64>,
    sl_txs_rejected: u64,
    sl_rejections: BTreeMap<String, u64>,
    chains: BTreeMap<ChainId, ChainNode>,
    /// The relayer, as every shell runs it (core, deadlines, execution submission).
    relayer: RelayerRole,
    /// What the relayer's shell counts itself (the role counts the rest).
    relayer_stats: RelayerReport,
    /// Users' transactions, by hash: the mode their message asked for and its destination.
    user_txs: BTreeMap<B256, (Mode, ChainId)>,
    messages: BTreeMap<MessageId, Track>,
    invariants: Invariants,
    faults: Vec<FaultRecord>,
    violation: Option<Violation>,
    /// What the liveness check found at the end of the run (`engine/liveness.rs`).
    liveness: crate::report::LivenessReport,
    liveness_violations: Vec<Violation>,
    events: u64,
    /// The security council: its key and, per chain, an operator core of its own fed with the
    /// chain's sealed batches (it holds the DA data) for forced settlement.
    council_key: TxSigner,
    council_ops: BTreeMap<ChainId, Operator>,
    /// The council's `proveBatch` transactions, to notice refused proofs.
    council_proofs: BTreeMap<B256, (ChainId, BatchNumber)>,
    /// Batches the council will revert (their proof was refused).
    council_reverts: BTreeSet<(ChainId, BatchNumber)>,
    council_stats: CouncilReport,
    /// Batches whose execution the council requested.
    forced_requests: BTreeSet<(ChainId, BatchNumber)>,
    forced_settlements: u64,
    revert_stats: RevertReport,
    revert_log: Vec<RevertRecord>,
    executions: Vec<BatchExecution>,
    /// Fault index → its record in `faults`.
    fault_records: BTreeMap<usize, usize>,
    adversary: TxSigner,
    adversary_txs: BTreeMap<(ChainId, B256), Attack>,
    adversary_stats: AdversaryReport,
    /// Recent executions handed to each destination (message, proof), for the adversary.
    exec_samples: BTreeMap<ChainId, VecDeque<(Message, MessageProof)>>,
    /// The block of an equivocating chain not to announce to the relayer (it saw the other one).
    suppress_relay: Option<(ChainId, BlockNumber)>,
    /// Per chain, the blocks (with receipts) and batch headers its sequencer sealed, by number
    /// (a re-sequenced number replaces the old one): what a sequencer's RPC serves to answer
    /// the relayer's backfill requests.
    feed_log: BTreeMap<ChainId, FeedLog>,
    /// The SL events sent to the relayer, by SL height (for its SL backfill requests).
    sl_feed_log: BTreeMap<u64, Vec<SlEvent>>,
    /// The sender of each traffic route (dev account `i` for route `i`).
    traffic_signers: Vec<TxSigner>,
    /// Validators, DA nodes and their adversaries, when the scenario has `[finality]`.
    finality: Option<finality::Finality>,
    /// The block being sealed closes a batch the fault tampers: validators see it tampered.
    tamper_block: bool,
    /// Some sequencer's head may have moved since the last invariant check (a tick, a restart,
    /// a roll-back): only then are the chains' states re-checked.
    heads_moved: bool,
    /// The SL events of the block being produced, sent to the relayer as one feed message.
    relayer_sl_events: Vec<SlEvent>,
    /// Proposers, challengers and their adversaries, when the scenario has `[optimistic]`.
    optimistic: Option<optimistic::OptimisticNet>,
    /// The aggregator role, when the scenario has `[aggregation]`.
    aggregation: Option<aggregated::AggregatorNet>,
    /// The SL account deposits are paid from.
    depositor: TxSigner,
    deposit_stats: crate::report::DepositReport,
    /// Per (chain, deposit index): when queued, first included, settled.
    deposit_times: BTreeMap<(ChainId, u64), (u64, Option<u64>)>,
    deposit_inclusion: Vec<u64>,
    deposit_settlement: Vec<u64>,
}

impl<'a> Sim<'a> {
    fn new(scenario: &'a Scenario, seed: u64) -> Result<Self, SimError> {
        let core = |e: &dyn std::fmt::Display| SimError::Core(e.to_string());
        let ids = scenario.chain_ids();
        let accounts = scenario.traffic.len().max(1) as u32;
        let relayer_key = TxSigner::dev(1_000_000);
        let adversary = adversary_key();
        let traffic_signers: Vec<TxSigner> = (0..accounts).map(TxSigner::dev).collect();
        let mut alloc: Vec<(Address, U256)> = traffic_signers
            .iter()
            .map(|s| (s.address(), dev_balance()))
            .collect();
        alloc.push((relayer_key.address(), dev_balance()));
        alloc.push((adversary.address(), dev_balance()));
        let council = council_key()?;
        let mut sl_config = SlConfig::new(council.address());
        sl_config.sl_block_time_ms = scenario.sl_block_time_ms;
        sl_config.timeout_operator_ms = scenario.timeout_operator_ms;
        sl_config.timeout_council_ms = scenario.timeout_council_ms;
        // the council registers every chain in the SL's first block
        sl_config.max_pending_txs_per_sender = sl_config.max_pending_txs_per_sender.max(ids.len());
        // stake stays slashable well past the settlement horizon
        sl_config.unbonding_ms = sl_config
            .unbonding_ms
            .max(scenario.timeout_council_ms.saturating_mul(2));
        sl_config.epoch_ms = scenario.finality.as_ref().map_or(3_600_000, |f| f.epoch_ms);
        if let Some(f) = &scenario.finality {
            sl_config
                .genesis_balances
                .extend(finality::Finality::genesis_balances(f));
        }
        sl_config.deposit_inclusion_window_ms = scenario.deposit_inclusion_window_ms;
        let depositor = TxSigner::dev(5_000_000);
        sl_config
            .genesis_balances
            .push((depositor.address(), dev_balance()));
        let mut optimistic_genesis = Vec::new();
        if let Some(o) = &scenario.optimistic {
            sl_config.optimistic = optimistic::OptimisticNet::sl_config(o, &ids);
            sl_config
                .genesis_balances
                .extend(optimistic::OptimisticNet::genesis_balances(o).map_err(SimError::Core)?);
        }
        let aggregation_net = match &scenario.aggregation {
            Some(spec) => Some(
                aggregated::AggregatorNet::new(
                    spec,
                    spec.tree_chains(&ids),
                    scenario.block_time_ms,
                )
                .map_err(SimError::Core)?,
            ),
            None => None,
        };
        let mut relayer_config = RelayerConfig::new(ids.clone());
        if let Some(a) = &aggregation_net {
            sl_config.aggregation = a.sl_config();
            relayer_config = relayer_config.with_aggregation(a.relayer_view());
        }
        let mut sl =
            SettlementLayer::new(sl_config, Box::new(ReExecution::new())).map_err(|e| core(&e))?;
        let mut relayer = Relayer::new(relayer_config);
        let mut feed_log = BTreeMap::new();
        let mut chains = BTreeMap::new();
        let mut genesis_states = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let mut c = SequencerConfig::new(*id);
            c.block_time_ms = scenario.block_time_ms;
            c.batch_blocks = scenario.batch_blocks;
            c.fee_recipient = Address::repeat_byte(0xfe);
            if aggregation_net.as_ref().is_some_and(|a| a.covers(*id)) {
                c.checkpoint_blocks = scenario.aggregation.as_ref().map(|a| a.checkpoint_blocks);
            }
            let (seq, genesis) = Sequencer::genesis(c, &alloc).map_err(|e| core(&e))?;
            if scenario.finality.is_some() {
                genesis_states.push((genesis.block.header.clone(), seq.state().clone()));
            }
            if scenario.optimistic.as_ref().is_some_and(|o| o.covers(*id)) {
                optimistic_genesis.push(seq.state().clone());
            }
            let key = operator_key(*id)?;
            let call = SlCall::RegisterChain(ChainGenesis {
                chain_id: *id,
                operator: key.address(),
                alloc: alloc.clone(),
                genesis_header: genesis.block.header.clone(),
            });
            let tx = SlTx::sign_with(&council, i as u64, call).map_err(|e| core(&e))?;
            if let Some(SlEvent::TxRejected { error, .. }) =
                sl.handle(SlInput::Submit(Box::new(tx))).pop()
            {
                return Err(core(&error));
            }
            // the relayer starts from every chain's genesis block (as in the devnet)
            feed_log.insert(
                *id,
                FeedLog {
                    blocks: BTreeMap::from([(
                        genesis.block.header.number,
                        (genesis.block.clone(), genesis.receipts.clone()),
                    )]),
                    headers: BTreeMap::new(),
                },
            );
            for a in relayer.handle(RelayerInput::SourceBlock {
                block: genesis.block,
                receipts: genesis.receipts,
            }) {
                if let RelayerAction::Error(e) = a {
                    return Err(core(&e));
                }
            }
            chains.insert(
                *id,
                ChainNode {
                    role: ChainRole::new(
                        seq,
                        Operator::new(operator_config(*id, scenario)),
                        sl.config().aggregation.clone(),
                    )
                    .map_err(|e| core(&e))?,
                    operator_key: key,
                    stalled_until: 0,
                    committed_seen: BTreeMap::new(),
                    down_until: 0,
                    held: Vec::new(),
                    tamper_next: None,
                    equivocate_next: None,
                    censor_until: 0,
                    censored: Vec::new(),
                    stats: ChainReport::default(),
                },
            );
        }
        let finality = match &scenario.finality {
            Some(spec) => {
                let f = finality::Finality::new(spec, &genesis_states).map_err(SimError::Core)?;
                for tx in f.join_txs().map_err(SimError::Core)? {
                    if let Some(SlEvent::TxRejected { error, .. }) =
                        sl.handle(SlInput::Submit(Box::new(tx))).pop()
                    {
                        return Err(core(&error));
                    }
                }
                Some(f)
            }
            None => None,
        };
        let optimistic_net = match &scenario.optimistic {
            Some(spec) => Some(
                optimistic::OptimisticNet::new(
                    spec,
                    &optimistic_genesis,
                    scenario.sl_block_time_ms,
                )
                .map_err(SimError::Core)?,
            ),
            None => None,
        };
        // the council reads the SL in-process (it runs an SL node): one SL block is enough
        let council_ops = ids
            .iter()
            .map(|id| {
                let mut c = OperatorConfig::new(*id);
                c.settled_by_tree = aggregation_net.as_ref().is_some_and(|a| a.covers(*id));
                (*id, Operator::new(c))
            })
            .collect();
        let mut sim = Self {
            scenario,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            next_seq: 0,
            queue: BTreeMap::new(),
            net: Network::new(scenario.link.clone()),
            sl,
            sl_pooled: BTreeMap::new(),
            sl_txs_rejected: 0,
            sl_rejections: BTreeMap::new(),
            chains,
            relayer: RelayerRole::new(relayer, relayer_key, scenario.relayer.retry_ms),
            relayer_stats: RelayerReport::default(),
            user_txs: BTreeMap::new(),
            messages: BTreeMap::new(),
            invariants: Invariants::default(),
            faults: Vec::new(),
            violation: None,
            liveness: Default::default(),
            liveness_violations: Vec::new(),
            events: 0,
            council_key: council,
            council_ops,
            council_proofs: BTreeMap::new(),
            council_reverts: BTreeSet::new(),
            council_stats: CouncilReport::default(),
            forced_requests: BTreeSet::new(),
            forced_settlements: 0,
            revert_stats: RevertReport::default(),
            revert_log: Vec::new(),
            executions: Vec::new(),
            fault_records: BTreeMap::new(),
            adversary,
            adversary_txs: BTreeMap::new(),
            adversary_stats: AdversaryReport::default(),
            exec_samples: BTreeMap::new(),
            suppress_relay: None,
            feed_log,
            sl_feed_log: BTreeMap::new(),
            traffic_signers,
            finality,
            tamper_block: false,
            heads_moved: true,
            relayer_sl_events: Vec::new(),
            optimistic: optimistic_net,
            aggregation: aggregation_net,
            depositor,
            deposit_stats: crate::report::DepositReport::default(),
            deposit_times: BTreeMap::new(),
            deposit_inclusion: Vec::new(),
            deposit_settlement: Vec::new(),
        };
        sim.invariants.sl_value = sim.sl.total_value();
        sim.schedule(0, Event::SlTick);
        let starts: Vec<(ChainId, u64)> = sim
            .chains
            .iter()
            .map(|(id, n)| (*id, n.role.seq().next_block_at_ms()))
            .collect();
        for (id, at) in starts {
            sim.queue_push(at, Event::SeqTick(id));
            sim.queue_push(scenario.operator_tick_ms, Event::OperatorTick(id));
        }
        sim.schedule(sim.relayer_tick_ms(), Event::RelayerTick);
        if let Some(f) = &scenario.finality {
            sim.schedule(f.postconfirm_interval_ms, Event::PostconfirmTick);
        }
        for i in 0..scenario.traffic.len() {
            let first = sim.interarrival(i);
            sim.schedule(first, Event::Traffic(i));
        }
        for (i, d) in scenario.deposits.iter().enumerate() {
            let first = sim.exp_ms(d.rate_per_s);
            sim.schedule(first, Event::Deposit(i));
        }
        sim.aggregation_schedule();
        for (i, f) in scenario.faults.iter().enumerate() {
            sim.schedule(f.at_ms(), Event::FaultStart(i));
            if !f.instantaneous() {
                sim.schedule(
                    f.at_ms().saturating_add(f.duration_ms()),
                    Event::FaultEnd(i),
                );
            }
        }
        Ok(sim)
    }

    fn relayer_tick_ms(&self) -> u64 {
        (self.scenario.relayer.retry_ms / 4).max(1)
    }

    fn queue_push(&mut self, at: u64, ev: Event) {
        self.queue.insert((at, self.next_seq), ev);
        self.next_seq += 1;
    }

    /// Schedules a timer at `at` (never in the past).
    fn schedule(&mut self, at: u64, ev: Event) {
        let at = at.max(self.now);
        self.queue_push(at, ev);
    }

    /// Hands a message to the network.
    fn send(&mut self, from: Role, to: Role, class: Class, d: Delivery) {
        if let Some(at) = self.net.send(self.now, from, to, class, &mut self.rng) {
            self.queue_push(at, Event::Deliver(Box::new(d)));
        }
    }

    /// Exponential inter-arrival time of traffic entry `i`, in ms (at least 1).
    fn interarrival(&mut self, i: usize) -> u64 {
        let rate = self.scenario.traffic.get(i).map_or(1.0, |t| t.rate_per_s);
        self.exp_ms(rate)
    }

    /// An exponential inter-arrival time for `rate` per second, in ms (at least 1).
    fn exp_ms(&mut self, rate: f64) -> u64 {
        let u: f64 = self.rng.gen();
        let ms = -(1.0 - u).ln() * 1000.0 / rate;
        (ms.ceil() as u64).max(1)
    }

    fn run_loop(&mut self, end: u64, progress: &mut dyn FnMut(u64, u64)) {
        // the first event past `end` stays queued: a later `run_loop` resumes with it
        while let Some(next) = self.queue.first_entry() {
            if next.key().0 > end {
                break;
            }
            let ((at, _), ev) = next.remove_entry();
            self.now = at;
            self.events += 1;
            if self.events.is_multiple_of(10_000) {
                progress(at, end);
            }
            if let Err(detail) = self.handle(ev) {
                self.violate("core_error", detail);
                return;
            }
            let heads_moved = std::mem::take(&mut self.heads_moved);
            let chains = &self.chains;
            if let Some((invariant, detail)) = self.invariants.check(
                &self.sl,
                heads_moved,
                chains.iter().map(|(id, n)| (*id, n.role.seq())),
                |id| chains.get(&id).map(|n| n.role.seq()),
            ) {
                self.violate(invariant, detail);
                return;
            }
        }
        self.now = end;
    }

    fn violate(&mut self, invariant: &str, detail: String) {
        self.violation = Some(Violation {
            invariant: invariant.to_string(),
            detail,
            at_ms: self.now,
            event: self.events,
            seed: self.seed,
            replay: self.scenario.replay_command(self.seed),
        });
    }

    fn handle(&mut self, ev: Event) -> Result<(), String> {
        match ev {
            Event::SeqTick(id) => self.sequencer_tick(id),
            Event::SlTick => self.sl_tick(),
            Event::OperatorTick(id) => self.operator_tick(id),
            Event::RelayerTick => {
                self.relayer_timeouts();
                let next = self.now + self.relayer_tick_ms();
                self.schedule(next, Event::RelayerTick);
                Ok(())
            }
            Event::Traffic(i) => {
                if self.now < self.scenario.traffic_stop_ms() {
                    if let Some(t) = self.scenario.traffic.get(i) {
                        let chain = t.from;
                        let d = Delivery::UserTx { chain, traffic: i };
                        self.send(Role::Users, Role::Sequencer(chain), Class::Datagram, d);
                    }
                    let next = self.now + self.interarrival(i);
                    self.schedule(next, Event::Traffic(i));
                }
                Ok(())
            }
            Event::FaultStart(i) => self.fault(i, true),
            Event::FaultEnd(i) => self.fault(i, false),
            Event::Deliver(d) => self.deliver(*d),
            Event::PostconfirmTick => self.postconfirm_tick(),
            Event::Deposit(i) => self.deposit_tick(i),
            Event::AggregatorTick => self.aggregator_tick(),
            Event::AggregatorLevel {
                generation,
                checkpoint,
                level,
                snapshot,
            } => {
                self.aggregator_level(generation, checkpoint, level, snapshot);
                Ok(())
            }
            Event::AggregatorRoot {
                generation,
                epoch,
                checkpoint,
                proof,
            } => {
                self.aggregator_root(generation, epoch, checkpoint, proof);
                Ok(())
            }
            Event::AggregatorTakeover => self.aggregator_takeover(),
            Event::ForgeImport(i) => {
                self.forge_import(i);
                Ok(())
            }
        }
    }

    fn fault(&mut self, i: usize, start: bool) -> Result<(), String> {
        let Some(f) = self.scenario.faults.get(i) else {
            return Ok(());
        };
        let end = f.at_ms().saturating_add(f.duration_ms());
        if start {
            self.fault_records.insert(i, self.faults.len());
            self.faults.push(FaultRecord {
                kind: f.kind().to_string(),
                chain: f.chain(),
                start_ms: self.now,
                end_ms: end,
                detail: None,
            });
        }
        match (f, start) {
            (Fault::OperatorStall { chain, .. }, true) => {
                if let Some(n) = self.chains.get_mut(chain) {
                    n.stalled_until = n.stalled_until.max(end);
                }
            }
            (
                Fault::OperatorStall {
                    chain, duration_ms, ..
                },
                false,
            ) => {
                if let Some(n) = self.chains.get_mut(chain) {
                    n.stats.operator_stalled_ms += duration_ms;
                }
            }
            (Fault::Partition { chain, .. }, true) => self.net.partition(*chain, end),
            (Fault::Partition { chain, .. }, false) => self.net.heal(*chain, self.now),
            (Fault::DropMessages { fraction, .. }, true) => self.net.start_drops(i, end, *fraction),
            (Fault::DropMessages { .. }, false) => self.net.stop_drops(i),
            (Fault::Crash { chain, .. }, true) => {
                if let Some(n) = self.chains.get_mut(chain) {
                    n.down_until = n.down_until.max(end);
                    n.stats.crashes += 1;
                }
            }
            (
                Fault::Crash {
                    chain, duration_ms, ..
                },
                false,
            ) => self.restart(*chain, *duration_ms, i)?,
            (Fault::RevertBatch { chain, .. }, true) => {
                if let Some(n) = self.chains.get_mut(chain) {
                    n.role.operator_mut().set_prove_and_execute(false);
                }
            }
            (Fault::RevertBatch { chain, .. }, false) => self.operator_reverts(*chain, i),
            (Fault::WrongStateRoot { chain, .. }, true) => {
                if let Some(n) = self.chains.get_mut(chain) {
                    n.tamper_next = Some(i);
                }
            }
            (Fault::Equivocation { chain, .. }, true) => {
                if let Some(n) = self.chains.get_mut(chain) {
                    n.equivocate_next = Some(i);
                }
            }
            (Fault::Replay { chain, .. }, true) => self.attack(*chain, Attack::Replay, i)?,
            (Fault::Forgery { chain, .. }, true) => self.attack(*chain, Attack::Forgery, i)?,
            (Fault::CensorDeposits { chain, .. }, true) => {
                if let Some(n) = self.chains.get_mut(chain) {
                    n.censor_until = n.censor_until.max(end);
                }
            }
            (Fault::CensorDeposits { chain, .. }, false) => {
                if let Some(n) = self.chains.get_mut(chain) {
                    for d in std::mem::take(&mut n.censored) {
                        n.role.seq_mut().handle(SequencerInput::Deposit(d));
                    }
                }
            }
            (
                Fault::WrongStateRoot { .. }
                | Fault::Equivocation { .. }
                | Fault::Replay { .. }
                | Fault::Forgery { .. },
                false,
            ) => {}
        }
        Ok(())
    }

    fn fault_detail(&mut self, fault: usize, detail: String) {
        if let Some(r) = self
            .fault_records
            .get(&fault)
            .and_then(|k| self.faults.get_mut(*k))
        {
            r.detail = Some(detail);
        }
    }

    /// A crashed node comes back: the sequencer is restored from what it persisted (every
    /// block it announced) with an empty pool; the operator's SL feed resumes where it stopped.
    fn restart(&mut self, id: ChainId, downtime: u64, fault: usize) -> Result<(), String> {
        let now = self.now;
        let Some(node) = self.chains.get_mut(&id) else {
            return Ok(());
        };
        if node.down(now) {
            return Ok(()); // another crash keeps it down longer
        }
        let lost = node.role.seq().mempool().len() as u64;
        *node.role.seq_mut() = restored(node.role.seq());
        self.heads_moved = true;
        node.stats.pool_txs_lost += lost;
        node.stats.downtime_ms += downtime;
        let held = std::mem::take(&mut node.held);
        // the relayer's pooled executions are gone: its shell notices by timeout
        self.relayer.dest_restarted(id);
        self.fault_detail(
            fault,
            format!("restarted at block {} with {lost} pooled txs lost", {
                self.chains
                    .get(&id)
                    .map_or(0, |n| n.role.seq().head().number)
            }),
        );
        for (height, events) in held {
            self.operator_observes(id, height, events)?;
        }
        Ok(())
    }

    /// `revert_batch`: the operator reverts its batches from the oldest unexecuted one it
    /// knows committed that its SL node does not report final (settled by an aggregation root
    /// or postconfirmed: the SL refuses to revert those), and proves and executes again.
    fn operator_reverts(&mut self, id: ChainId, fault: usize) {
        let sl = &self.sl;
        let Some(node) = self.chains.get_mut(&id) else {
            return;
        };
        node.role.operator_mut().set_prove_and_execute(true);
        let from = node
            .role
            .view()
            .unexecuted()
            .find(|n| sl.finality(id, *n).is_none());
        match from {
            Some(from) => {
                self.fault_detail(fault, format!("operator reverts from batch {from}"));
                let call = SlCall::RevertBatches { chain_id: id, from };
                let d = Delivery::SlCalls {
                    chain: id,
                    calls: vec![call],
                };
                self.send(Role::Operator(id), Role::Sl, Class::Datagram, d);
            }
            None => self.fault_detail(fault, "no unexecuted committed batch to revert".into()),
        }
    }

    /// `replay` / `forgery`: the adversary submits an `executeMessage` to `dest`, built from
    /// an execution already seen there.
    fn attack(&mut self, dest: ChainId, attack: Attack, fault: usize) -> Result<(), String> {
        let executed = self.invariants.executed.get(&dest);
        let sample = self.exec_samples.get(&dest).and_then(|q| {
            q.iter()
                .find(|(m, _)| executed.is_some_and(|e| e.contains_key(&m.id())))
                .cloned()
        });
        let Some((message, proof)) = sample else {
            self.adversary_stats.skipped += 1;
            self.fault_detail(fault, format!("nothing executed on chain {dest} yet"));
            return Ok(());
        };
        let (message, proof) = match attack {
            Attack::Replay => (message, proof),
            Attack::Forgery => {
                let mut forged = message;
                forged.nonce += 1_000_000;
                forged.value = U256::from(10u64) * U256::from(10u64).pow(U256::from(18u64));
                forged.payload = Bytes::from_static(b"forged");
                let mut doctored = proof;
                doctored.leafIndex = forged.nonce;
                (forged, doctored)
            }
        };
        self.fault_detail(
            fault,
            format!(
                "{} of message {} on chain {dest}",
                attack.name(),
                message.id()
            ),
        );
        match attack {
            Attack::Replay => self.adversary_stats.replays_submitted += 1,
            Attack::Forgery => self.adversary_stats.forgeries_submitted += 1,
        }
        let from = self.adversary.address();
        let nonce = self
            .pending_nonce(dest, &from)
            .ok_or_else(|| format!("unknown chain {dest}"))?;
        let input = execute_message_calldata(&message, &proof);
        let raw = self
            .adversary
            .call(dest, nonce, MESSENGER_ADDRESS, U256::ZERO, input, 1_000_000)
            .map_err(|e| e.to_string())?;
        match self.submit_tx(dest, raw) {
            Ok((hash, _)) => {
                self.adversary_txs.insert((dest, hash), attack);
            }
            Err(e) => {
                *self
                    .adversary_stats
                    .rejections
                    .entry(format!("{}: pool refused: {e}", attack.name()))
                    .or_default() += 1;
            }
        }
        Ok(())
    }

    fn adversary_dropped(&mut self, chain: ChainId, hash: B256, error: &impl std::fmt::Debug) {
        let Some(attack) = self.adversary_txs.remove(&(chain, hash)) else {
            return;
        };
        let kind = kind_of(error);
        match (attack, kind.as_str()) {
            (Attack::Replay, "AlreadyExecuted") => self.adversary_stats.replays_rejected += 1,
            (Attack::Forgery, "BadProof") => self.adversary_stats.forgeries_rejected += 1,
            _ => {}
        }
        *self
            .adversary_stats
            .rejections
            .entry(format!("{}: {kind}", attack.name()))
            .or_default() += 1;
    }

    // ----- sequencers -----

    fn sequencer_tick(&mut self, id: ChainId) -> Result<(), String> {
        let now = self.now;
        self.heads_moved = true;
        let Some(node) = self.chains.get_mut(&id) else {
            return Ok(());
        };
        if node.down(now) {
            // the restart (a fault end at `down_until`) runs before this tick
            let at = node.down_until;
            self.schedule(at, Event::SeqTick(id));
            return Ok(());
        }
        let twin = match node.equivocate_next {
            Some(_) => Some(restored(node.role.seq())),
            None => None,
        };
        let mut outs = node
            .role
            .seq_mut()
            .handle(SequencerInput::Tick { now_ms: now });
        if let (Some(twin), Some(fault)) = (twin, node.equivocate_next) {
            let lie = outs.iter().find_map(|o| match o {
                SequencerOutput::BlockSealed(b) => Some((b.block.clone(), b.receipts.clone())),
                _ => None,
            });
            if let Some((block, receipts)) = lie {
                // block h goes to the relayer only; the chain continues on h' (same height,
                // built a millisecond later from an empty pool), which its batches commit.
                // The messages only h holds are phantoms (see `Invariants::phantom_leaves`).
                let outbox = node.role.seq().state().outbox();
                for id in receipts.iter().filter_map(|r| r.message_sent) {
                    if let Some(leaf) = outbox.leaf(id.nonce) {
                        self.invariants.phantom_leaves.insert(leaf);
                    }
                }
                node.equivocate_next = None;
                *node.role.seq_mut() = twin;
                outs = node
                    .role
                    .seq_mut()
                    .handle(SequencerInput::Tick { now_ms: now + 1 });
                let number = block.header.number;
                let other = outs.iter().find_map(|o| match o {
                    SequencerOutput::BlockSealed(b) => Some(b.hash),
                    _ => None,
                });
                self.suppress_relay = Some((id, number));
                self.fault_detail(
                    fault,
                    format!(
                        "block {number}: {} ({} txs) to the relayer, {} (empty) committed",
                        block.header.hash(),
                        block.transactions.len(),
                        other.map_or_else(|| "none".to_string(), |h| h.to_string())
                    ),
                );
                let d = Delivery::Block {
                    chain: id,
                    block,
                    receipts,
                };
                self.send(Role::Sequencer(id), Role::Relayer, Class::Feed, d);
            }
        }
        let next = self
            .chains
            .get(&id)
            .map_or(now + 1, |n| n.role.seq().next_block_at_ms().max(now + 1));
        self.tamper_block = self
            .chains
            .get(&id)
            .is_some_and(|n| n.tamper_next.is_some())
            && outs
                .iter()
                .any(|o| matches!(o, SequencerOutput::BatchSealed(_)));
        let mut tampered = None;
        let effects = match self.chains.get_mut(&id) {
            Some(node) => {
                if self.tamper_block {
                    if let Some(fault) = node.tamper_next.take() {
                        node.role.alter_next_batch(tamper_state_root);
                        tampered = Some(fault);
                    }
                }
                node.role.absorb(outs).map_err(|e| e.to_string())?
            }
            None => vec![],
        };
        for effect in effects {
            if let (Some(fault), ChainEffect::BatchSealed { batch, .. }) = (tampered, &effect) {
                let n = batch.header.number;
                self.fault_detail(
                    fault,
                    format!("batch {n} handed to the operator with a wrong state root"),
                );
            }
            self.chain_effect(id, effect)?;
        }
        self.tamper_block = false;
        self.suppress_relay = None;
        // the block made room in the pool for executions waiting for it
        self.drain_exec_backlog(id);
        self.schedule(next, Event::SeqTick(id));
        Ok(())
    }

    /// Applies what a chain node asked for: announce, report, tell the relayer.
    fn chain_effect(&mut self, id: ChainId, effect: ChainEffect) -> Result<(), String> {
        let (seq_role, relayer) = (Role::Sequencer(id), Role::Relayer);
        let out = match effect {
            ChainEffect::BlockSealed { block, .. } => {
                self.block_sealed(id, *block);
                return Ok(());
            }
            ChainEffect::BatchSealed { batch, .. } => {
                let header = batch.header.clone();
                self.feed_log
                    .entry(id)
                    .or_default()
                    .headers
                    .insert(header.number, header.clone());
                // a batch sealed on blocks the SL already voided (the sequencer has not rolled
                // back yet) is void: its re-sealed successor comes after the roll-back
                let void = self
                    .invariants
                    .voided
                    .get(&id)
                    .is_some_and(|first| header.lastBlock >= *first);
                if let Some(op) = self.council_ops.get_mut(&id).filter(|_| !void) {
                    // the council holds the DA data of every sealed batch
                    op.batch_sealed(*batch)
                        .map_err(|e| format!("council's operator of {id}: {e}"))?;
                }
                if let Some(node) = self.chains.get_mut(&id) {
                    node.stats.batches_sealed += 1;
                }
                self.send(
                    seq_role,
                    relayer,
                    Class::Feed,
                    Delivery::BatchSealed { header },
                );
                return Ok(());
            }
            ChainEffect::Doomed { first_block, .. } => {
                self.invariants.sl_voided(id, first_block);
                return Ok(());
            }
            ChainEffect::RolledBack { outcome, .. } => {
                self.rolled_back(id, &outcome);
                return Ok(());
            }
            ChainEffect::Finalized { .. } | ChainEffect::CheckFailed { .. } => return Ok(()),
            ChainEffect::SlGap { from, to } => {
                if let Some(node) = self.chains.get_mut(&id) {
                    node.stats.sl_backfills += 1;
                }
                let d = Delivery::OperatorBackfillSl {
                    chain: id,
                    from,
                    to,
                };
                self.send(Role::Operator(id), Role::Sl, Class::Datagram, d);
                return Ok(());
            }
            ChainEffect::ImportRefused { import, reason } => {
                self.import_refused(id, import, kind_of(&reason));
                return Ok(());
            }
            ChainEffect::Output(out) => out,
        };
        match out {
            SequencerOutput::TxDropped { hash, error } => {
                if let Some(node) = self.chains.get_mut(&id) {
                    *node.stats.txs_dropped.entry(kind_of(&error)).or_default() += 1;
                }
                self.adversary_dropped(id, hash, &error);
                let mut dests = LocalChains {
                    chains: &mut self.chains,
                    now_ms: self.now,
                };
                let effects = self.relayer.tx_dropped(id, hash, &mut dests);
                self.relayer_effects(effects);
            }
            SequencerOutput::ImportRejected { import, error } => {
                self.import_refused(id, import, kind_of(&error));
            }
            _ => {}
        }
        Ok(())
    }

    /// Chain `id` refused an import (its node before the sequencer, or the sequencer): count it
    /// by kind and tell the relayer.
    fn import_refused(&mut self, id: ChainId, import: ImportedRoot, kind: String) {
        if let Some(node) = self.chains.get_mut(&id) {
            *node.stats.imports_rejected.entry(kind).or_default() += 1;
        }
        let d = Delivery::ImportRejected {
            dest: id,
            root: import,
        };
        self.send(Role::Sequencer(id), Role::Relayer, Class::Datagram, d);
    }

    fn block_sealed(&mut self, id: ChainId, b: SealedBlock) {
        let SealedBlock {
            block, receipts, ..
        } = b;
        let number = block.header.number;
        let ts = block.header.timestampMs;
        if let Some(node) = self.chains.get_mut(&id) {
            node.stats.blocks += 1;
        }
        self.feed_log
            .entry(id)
            .or_default()
            .blocks
            .insert(number, (block.clone(), receipts.clone()));
        if !block.deposits.is_empty() {
            self.deposits_included(&block);
        }
        if self.finality.is_some() {
            if self.tamper_block {
                // the same tampering as the batch's (`tamper_state_root`): one invalid block
                let mut bad = block.clone();
                bad.header.stateRoot = B256::repeat_byte(0xee);
                self.finality_block(id, &bad, true);
            } else {
                self.finality_block(id, &block, false);
            }
        }
        for r in &receipts {
            if self.adversary_txs.remove(&(id, r.tx_hash)).is_some() {
                self.adversary_stats.accepted += 1;
            }
            if let Some(mid) = r.message_sent {
                match self.messages.get_mut(&mid) {
                    // the same transaction re-included after a revert of the source: the same
                    // message, in a new block
                    Some(t) if t.tx == r.tx_hash => t.source_block = Some(number),
                    // a new message (another transaction took the id after a revert), or one
                    // first seen
                    _ => {
                        if let Some((mode, dest)) = self.user_txs.get(&r.tx_hash) {
                            self.messages.insert(
                                mid,
                                Track {
                                    tx: r.tx_hash,
                                    mode: *mode,
                                    dest: *dest,
                                    sent_at: ts,
                                    source_block: Some(number),
                                    executed_at: None,
                                    settled_at: None,
                                },
                            );
                        }
                    }
                }
            }
            if let Some(mid) = r.message_executed {
                let leaf = self.relayer.tx_included(id, r.tx_hash, number);
                self.invariants.executed(
                    id,
                    mid,
                    Execution {
                        block: number,
                        leaf,
                    },
                );
                // a block the SL (or a source revert) already voided is rolled back, with its
                // executions: only executions that can stand are judged; an execution of an
                // equivocated block's message is a phantom, which must be undone altogether
                // (`Invariants::phantom_leaves`, checked at settlement and at the end)
                let void_from = self.invariants.voided.get(&id).copied();
                let phantom = leaf.is_some_and(|l| self.invariants.phantom_leaves.contains(&l));
                let early = void_from.is_none_or(|v| number < v)
                    && !phantom
                    && self.messages.get(&mid).is_some_and(|t| {
                        t.mode == Mode::Optimistic
                            && t.source_block
                                .is_some_and(|b| !self.optimistic_final(mid.source_chain, b))
                    });
                if early && self.invariants.pending.is_none() {
                    self.invariants.pending = Some((
                        "optimistic_before_final",
                        format!(
                            "message {mid} (optimistic mode) executed on chain {id} before its \
                             source batch's end state was final"
                        ),
                    ));
                }
                // (the message with this id now: a revert of its source may have given the id
                // to another message, to another destination)
                if let Some(t) = self.messages.get_mut(&mid).filter(|t| t.dest == id) {
                    t.executed_at.get_or_insert(ts);
                }
            }
        }
        if self.suppress_relay == Some((id, number)) {
            return; // equivocation: the relayer got the other block at this height
        }
        let d = Delivery::Block {
            chain: id,
            block,
            receipts,
        };
        self.send(Role::Sequencer(id), Role::Relayer, Class::Feed, d);
    }

    /// The pending nonce of `from` on `chain`, as `eth_getTransactionCount(.., "pending")`.
    fn pending_nonce(&self, chain: ChainId, from: &Address) -> Option<u64> {
        let node = self.chains.get(&chain)?;
        let account = node.role.seq().state().account(from).nonce;
        Some(node.role.seq().mempool().pending_nonce(from, account))
    }

    fn submit_tx(&mut self, chain: ChainId, raw: Bytes) -> Result<(B256, Option<B256>), String> {
        let mut chains = LocalChains {
            chains: &mut self.chains,
            now_ms: self.now,
        };
        chains.submit(chain, raw).map_err(|e| e.to_string())
    }

    fn user_tx(&mut self, chain: ChainId, traffic: usize) {
        let Some(t) = self.scenario.traffic.get(traffic) else {
            return;
        };
        let (to, mode, value) = (t.to, t.mode, t.value_wei);
        let Some(signer) = self.traffic_signers.get(traffic).cloned() else {
            return;
        };
        let Some(nonce) = self.pending_nonce(chain, &signer.address()) else {
            return;
        };
        let input = IMessenger::sendMessageWithModeCall {
            destChain: U256::from(to),
            recipient: signer.address(),
            payload: Bytes::from_static(b"braid sim"),
            mode: braid_primitives::ImportKind::from(mode) as u8,
        }
        .abi_encode();
        let raw = signer.call(
            chain,
            nonce,
            MESSENGER_ADDRESS,
            U256::from(value),
            input.into(),
            300_000,
        );
        let accepted = match raw {
            Ok(raw) => self.submit_tx(chain, raw).ok(),
            Err(_) => None,
        };
        if let Some(node) = self.chains.get_mut(&chain) {
            match accepted {
                Some(_) => node.stats.user_txs_accepted += 1,
                None => node.stats.user_txs_rejected += 1,
            }
        }
        if let Some((hash, _)) = accepted {
            self.user_txs.insert(hash, (mode, to));
        }
    }

    fn relayer_execute_arrived(&mut self, dest: ChainId, message: Message, proof: MessageProof) {
        let samples = self.exec_samples.entry(dest).or_default();
        if samples.len() >= ADVERSARY_SAMPLES {
            samples.pop_front();
        }
        samples.push_back((message.clone(), proof.clone()));
        let mut dests = LocalChains {
            chains: &mut self.chains,
            now_ms: self.now,
        };
        let effects = self
            .relayer
            .execution_arrived(self.now, dest, message, proof, &mut dests);
        self.relayer_effects(effects);
    }

    /// `dest` sealed a block: executions waiting for room in its pool may go in.
    fn drain_exec_backlog(&mut self, dest: ChainId) {
        let mut dests = LocalChains {
            chains: &mut self.chains,
            now_ms: self.now,
        };
        let effects = self.relayer.drain(self.now, dest, &mut dests);
        self.relayer_effects(effects);
    }

    // ----- settlement layer -----

    fn sl_tick(&mut self) -> Result<(), String> {
        self.council_tick()?;
        let events = self.sl.handle(SlInput::Tick { now_ms: self.now });
        self.sl_pooled.clear();
        let mut registered = false;
        for e in &events {
            registered |= matches!(e, SlEvent::ChainRegistered { .. });
            self.sl_event(e);
        }
        let for_relayer = std::mem::take(&mut self.relayer_sl_events);
        let height = for_relayer.iter().rev().find_map(|e| match e {
            SlEvent::SlBlock { height, .. } => Some(*height),
            _ => None,
        });
        if let Some(h) = height {
            self.sl_feed_log.insert(h, for_relayer.clone());
        }
        if let Some(h) = height {
            // every operator follows every SL block (its SlBlock event at least)
            let ids: Vec<ChainId> = self.chains.keys().copied().collect();
            for id in ids {
                self.send_operator_block(id, h, &for_relayer);
            }
        }
        if !for_relayer.is_empty() {
            let d = Delivery::SlToRelayer(for_relayer);
            self.send(Role::Sl, Role::Relayer, Class::Feed, d);
        }
        if registered {
            self.invariants.sl_value = self.sl.total_value();
        }
        let next = self.now + self.scenario.sl_block_time_ms;
        self.schedule(next, Event::SlTick);
        Ok(())
    }

    fn sl_event(&mut self, e: &SlEvent) {
        self.finality_sl_event(e);
        if let Err(detail) = self.optimistic_sl_event(e) {
            let name = if detail.starts_with("wrong_root_final") {
                "wrong_root_final"
            } else {
                "core_error"
            };
            self.invariants.pending.get_or_insert((name, detail));
        }
        self.deposit_sl_event(e);
        self.aggregation_sl_event(e);
        if let SlEvent::BatchesReverted {
            chain, first_block, ..
        } = e
        {
            self.tree_revert_check(*chain, *first_block);
        }
        let now = self.now;
        for (id, op) in self.council_ops.iter_mut() {
            if route::operator_concerns(*id, e) {
                let _ = op.observe_sl(e); // the chain's own operator drives its sequencer
            }
        }
        match e {
            SlEvent::TxRejected {
                call, error, hash, ..
            } => {
                if let Some((chain, batch)) = self.council_proofs.remove(hash) {
                    if matches!(error, SettlementError::ProofRejected { .. }) {
                        self.council_stats.proofs_refused += 1;
                        self.council_reverts.insert((chain, batch));
                    }
                } else if let SettlementError::ProofRejected {
                    chain,
                    batch,
                    error: proof_error,
                } = error
                {
                    // the SL re-executed the operator's batch and found an invalid block: public
                    // evidence, the council need not wait for its own proof to fail
                    if matches!(**proof_error, braid_proof::ProofError::InvalidBlock { .. }) {
                        self.council_reverts.insert((*chain, *batch));
                    }
                }
                self.sl_rejected(call, error)
            }
            SlEvent::BatchCommitted { chain, .. } => {
                if let Some(n) = self.chains.get_mut(chain) {
                    n.stats.batches_committed += 1;
                }
            }
            SlEvent::ExecutionRequested {
                chain,
                batch,
                by: Authority::Council,
            } => {
                self.forced_requests.insert((*chain, *batch));
            }
            SlEvent::BatchExecuted { chain, batch, .. } => {
                self.invariants.batch_executed(*chain, *batch);
                self.executions.push(BatchExecution {
                    at_ms: self.now,
                    chain: *chain,
                    batch: *batch,
                });
                let forced = self.forced_requests.remove(&(*chain, *batch));
                if forced {
                    self.forced_settlements += 1;
                }
                if let Some(n) = self.chains.get_mut(chain) {
                    n.stats.batches_executed += 1;
                    n.stats.batches_forced += u64::from(forced);
                }
                if let Some(rec) = self.sl.batch(*chain, *batch) {
                    let (first, last) = (rec.header.firstBlock, rec.header.lastBlock);
                    // executions in final blocks can no longer be re-pooled
                    self.relayer.dest_final(*chain, last);
                    let range = MessageId {
                        source_chain: *chain,
                        nonce: 0,
                    }..=MessageId {
                        source_chain: *chain,
                        nonce: u64::MAX,
                    };
                    for t in self.messages.range_mut(range).map(|(_, t)| t) {
                        if t.settled_at.is_none()
                            && t.source_block.is_some_and(|b| first <= b && b <= last)
                        {
                            t.settled_at = Some(now);
                        }
                    }
                }
            }
            SlEvent::BatchesReverted {
                chain,
                from,
                to,
                first_block,
                cause,
            } => {
                self.invariants.batches_reverted(*chain, *from, *to);
                self.invariants.sl_voided(*chain, *first_block);
                self.forced_requests
                    .retain(|(c, b)| *c != *chain || *b < *from);
                if let Some(n) = self.chains.get_mut(chain) {
                    n.stats.batches_reverted += to - from + 1;
                }
                self.revert_stats.batches += to - from + 1;
                let cause = match cause {
                    RevertCause::Requested(Authority::Operator) => {
                        self.revert_stats.by_operator += 1;
                        "operator".to_string()
                    }
                    RevertCause::Requested(Authority::Council) => {
                        self.revert_stats.by_council += 1;
                        "council".to_string()
                    }
                    RevertCause::Requested(Authority::Anyone) => "anyone".to_string(),
                    RevertCause::Cascade {
                        source_chain,
                        source_batch,
                    } => {
                        self.revert_stats.cascade += 1;
                        format!("cascade from {source_chain}/{source_batch}")
                    }
                    RevertCause::Contradicted {
                        source_chain,
                        height,
                        ..
                    } => {
                        self.revert_stats.contradicted += 1;
                        format!("contradicted import of {source_chain} at {height}")
                    }
                };
                self.revert_log.push(RevertRecord {
                    at_ms: now,
                    chain: *chain,
                    from: *from,
                    to: *to,
                    cause,
                });
                if let Err(e) = self.doom_importers(*chain, *from, *first_block) {
                    self.invariants.pending.get_or_insert(("core_error", e));
                }
            }
            _ => {}
        }
        if !route::relayer_concerns(e) {
            return;
        }
        self.relayer_sl_events.push(e.clone());
    }

    /// Sends chain `id`'s operator the events of SL block `height` routed to it (from the
    /// block's events for batch-settling roles).
    fn send_operator_block(&mut self, id: ChainId, height: u64, events: &[SlEvent]) {
        let events: Vec<SlEvent> = events
            .iter()
            .filter(|e| route::operator_concerns(id, e))
            .cloned()
            .collect();
        let d = Delivery::SlToOperator {
            chain: id,
            height,
            events,
        };
        self.send(Role::Sl, Role::Operator(id), Class::Feed, d);
    }

    /// The security council, co-located with the SL (it reads it in-process, right before each
    /// SL block): reverts batches whose proof the SL refused to it, and settles every chain
    /// that has made no progress for `timeout_operator_ms` with its own operator core
    /// (commit, prove, request execution), as the SL allows it then.
    fn council_tick(&mut self) -> Result<(), String> {
        let now = self.now;
        if !self.council_reverts.is_empty() {
            // validators' accepts of invalid blocks are judged against the committed batch:
            // report them before the revert takes it away (the reports go first in the block)
            self.report_invalid_accepts()?;
        }
        let mut reverting = BTreeSet::new();
        for (chain, from) in std::mem::take(&mut self.council_reverts) {
            reverting.insert(chain);
            // a final batch (executed, root-settled, postconfirmed) is never reverted: the SL
            // would refuse it, and it can execute
            let revertible = self
                .sl
                .chain(chain)
                .is_some_and(|c| from > c.last_executed && from <= c.last_committed)
                && self.sl.finality(chain, from).is_none();
            if revertible {
                self.council_stats.reverts += 1;
                self.council_submit(SlCall::RevertBatches {
                    chain_id: chain,
                    from,
                })?;
            }
        }
        let timeout = self.scenario.timeout_operator_ms;
        let mut calls = Vec::new();
        for (id, op) in self.council_ops.iter_mut() {
            let Some(c) = self.sl.chain(*id) else {
                continue;
            };
            if reverting.contains(id) {
                continue; // settle what is left after the revert, next SL block
            }
            // the SL's rule
            let since = c.stalled_since();
            if now.saturating_sub(since) >= timeout {
                calls.extend(op.tick(&self.sl, &WatchedSources(self.relayer.core())));
            }
        }
        for call in calls {
            match &call {
                SlCall::CommitBatch { .. } => self.council_stats.commits += 1,
                SlCall::ProveBatch { .. } => self.council_stats.proofs += 1,
                SlCall::ExecuteBatch { .. } => self.council_stats.execution_requests += 1,
                _ => {}
            }
            self.council_submit(call)?;
        }
        Ok(())
    }

    /// Signs a council call with the next council nonce and submits it to the SL.
    fn council_submit(&mut self, call: SlCall) -> Result<(), String> {
        let proof_of = match &call {
            SlCall::ProveBatch {
                chain_id, batch, ..
            } => Some((*chain_id, *batch)),
            _ => None,
        };
        let signer = self.council_key.clone();
        if let (Some(hash), Some(p)) = (self.submit_signed(&signer, call)?, proof_of) {
            self.council_proofs.insert(hash, p);
        }
        Ok(())
    }

    /// Signs `call` with `signer` and the nonce the devnet uses (SL nonce + the sender's
    /// transactions already pooled) and submits it; returns its hash unless the SL refused it.
    fn submit_signed(&mut self, signer: &TxSigner, call: SlCall) -> Result<Option<B256>, String> {
        let from = signer.address();
        let pooled = self.sl_pooled.get(&from).copied().unwrap_or(0);
        let nonce = self.sl.nonce(&from) + pooled;
        let tx = SlTx::sign_with(signer, nonce, call).map_err(|e| e.to_string())?;
        let hash = tx.hash();
        let mut rejected = false;
        for e in self.sl.handle(SlInput::Submit(Box::new(tx))) {
            if let SlEvent::TxRejected { call, error, .. } = e {
                rejected = true;
                self.sl_rejected(call, &error);
            }
        }
        if rejected {
            return Ok(None);
        }
        *self.sl_pooled.entry(from).or_default() += 1;
        Ok(Some(hash))
    }

    /// An operator's call reaches the SL: signed with the operator's key and the nonce the
    /// devnet uses (SL nonce + the sender's transactions already pooled), then submitted.
    fn sl_call_arrived(&mut self, chain: ChainId, call: SlCall) -> Result<(), String> {
        let Some(node) = self.chains.get(&chain) else {
            return Ok(());
        };
        let signer = node.operator_key.clone();
        self.submit_signed(&signer, call).map(|_| ())
    }

    fn sl_rejected(&mut self, call: &str, error: &SettlementError) {
        self.sl_txs_rejected += 1;
        let kind = kind_of(error);
        *self
            .sl_rejections
            .entry(format!("{call}: {kind}"))
            .or_default() += 1;
    }

    // ----- operators -----

    fn operator_tick(&mut self, id: ChainId) -> Result<(), String> {
        let now = self.now;
        let next = now + self.scenario.operator_tick_ms;
        self.schedule(next, Event::OperatorTick(id));
        let Some(node) = self.chains.get_mut(&id) else {
            return Ok(());
        };
        if now < node.stalled_until || node.down(now) {
            return Ok(());
        }
        let proof_time = self.scenario.proof_time_ms;
        let committed_seen = &node.committed_seen;
        let calls: Vec<SlCall> = node
            .role
            .operator_tick(&self.sl, &WatchedSources(self.relayer.core()))
            .into_iter()
            .filter(|call| match call {
                // the prover is still working: the operator core issues the call again later
                SlCall::ProveBatch { batch, .. } => {
                    now >= committed_seen
                        .get(batch)
                        .copied()
                        .unwrap_or(now)
                        .saturating_add(proof_time)
                }
                _ => true,
            })
            .collect();
        if !calls.is_empty() {
            let d = Delivery::SlCalls { chain: id, calls };
            self.send(Role::Operator(id), Role::Sl, Class::Datagram, d);
        }
        Ok(())
    }

    fn operator_observes(
        &mut self,
        id: ChainId,
        height: u64,
        events: Vec<SlEvent>,
    ) -> Result<(), String> {
        let now = self.now;
        let Some(node) = self.chains.get_mut(&id) else {
            return Ok(());
        };
        if node.down(now) {
            node.held.push((height, events)); // the feed resumes when the node restarts
            return Ok(());
        }
        let mut events = events;
        if now < node.censor_until {
            events.retain(|e| match e {
                SlEvent::DepositQueued(d) => {
                    node.censored.push(d.clone());
                    self.deposit_stats.censored += 1;
                    false
                }
                _ => true,
            });
        }
        for e in &events {
            if let SlEvent::BatchCommitted { chain, batch, .. } = e {
                if *chain == id {
                    node.committed_seen.entry(*batch).or_insert(now);
                }
            }
        }
        let effects = node
            .role
            .observe_sl_block(height, events, &self.sl)
            .map_err(|e| e.to_string())?;
        for effect in effects {
            self.chain_effect(id, effect)?;
        }
        Ok(())
    }

    /// A chain rolled back (a revert of its batches, or of a source its open batch imported
    /// from): report what was not re-pooled, undo the executions of the discarded blocks, and
    /// withdraw the relayer's re-pooled executions.
    fn rolled_back(&mut self, id: ChainId, outcome: &braid_sequencer::RevertOutcome) {
        // the discarded blocks and batches are no longer the chain's: never served again. Their
        // messages are phantoms where another chain imported them (a roll-back of blocks the
        // SL never saw is, for an importer, like an equivocation): such executions must be
        // undone before they settle (`Invariants::phantom_leaves`)
        if let Some(log) = self.feed_log.get_mut(&id) {
            let discarded = log.blocks.split_off(&(outcome.head.number + 1));
            log.headers.split_off(&(outcome.last_batch + 1));
            for (_, receipts) in discarded.values() {
                for l in receipts
                    .iter()
                    .flat_map(|r| r.logs.iter())
                    .filter(|l| l.address == MESSENGER_ADDRESS)
                {
                    if let Ok(ev) =
                        <IMessenger::MessageSent as alloy_sol_types::SolEvent>::decode_log_data(
                            &l.data,
                        )
                    {
                        self.invariants.phantom_leaves.insert(ev.leaf);
                    }
                }
            }
        }
        if let Some(node) = self.chains.get_mut(&id) {
            for (_, why) in &outcome.txs_dropped {
                *node
                    .stats
                    .txs_not_repooled
                    .entry(why.kind().to_string())
                    .or_default() += 1;
            }
        }
        self.heads_moved = true;
        // as a source: its messages in the discarded blocks are sent again only if the
        // re-sequenced chain includes their transactions again
        let range = MessageId {
            source_chain: id,
            nonce: 0,
        }..=MessageId {
            source_chain: id,
            nonce: u64::MAX,
        };
        for (_, t) in self.messages.range_mut(range) {
            if t.settled_at.is_none() && t.source_block > Some(outcome.head.number) {
                t.source_block = None;
            }
        }
        let undone = self.invariants.dest_reverted(id, outcome.head.number + 1);
        for mid in undone {
            // not a message that took the id after a revert of its source, to another
            // destination: the execution undone was its predecessor's
            if let Some(t) = self.messages.get_mut(&mid).filter(|t| t.dest == id) {
                t.executed_at = None; // executed again on the re-sequenced chain
            }
        }
        let mut dests = LocalChains {
            chains: &mut self.chains,
            now_ms: self.now,
        };
        let effects = self.relayer.dest_rolled_back(id, &mut dests);
        self.relayer_effects(effects);
    }

    /// A source revert voids roots that other chains may have imported in blocks the SL does not
    /// hold yet: every chain node applies the rule at once (the SL is in process here), before
    /// the revert's event reaches its operator through the network.
    fn doom_importers(
        &mut self,
        source: ChainId,
        from: BatchNumber,
        first_block: BlockNumber,
    ) -> Result<(), String> {
        let ids: Vec<ChainId> = self.chains.keys().copied().collect();
        for id in ids {
            let effects = match self.chains.get_mut(&id) {
                Some(node) => node
                    .role
                    .source_reverted(source, from, first_block)
                    .map_err(|e| e.to_string())?,
                None => continue,
            };
            for effect in effects {
                self.chain_effect(id, effect)?;
            }
        }
        Ok(())
    }

    // ----- relayer -----

    fn relayer_effects(&mut self, effects: Vec<RelayerEffect>) {
        for effect in effects {
            match effect {
                RelayerEffect::Import { dest, root, epoch } => {
                    let d = Delivery::Import { dest, root, epoch };
                    self.send(Role::Relayer, Role::Sequencer(dest), Class::Datagram, d);
                }
                RelayerEffect::Execute {
                    dest,
                    message,
                    proof,
                } => {
                    let d = Delivery::Execute {
                        dest,
                        message,
                        proof,
                    };
                    self.send(Role::Relayer, Role::Sequencer(dest), Class::Datagram, d);
                }
                RelayerEffect::ExecuteDropped { dest, id } => {
                    let d = Delivery::ExecuteDropped { id };
                    self.send(Role::Sequencer(dest), Role::Relayer, Class::Datagram, d);
                }
                RelayerEffect::BackfillSl { from, to } => {
                    let d = Delivery::BackfillSl { from, to };
                    self.send(Role::Relayer, Role::Sl, Class::Datagram, d);
                }
                RelayerEffect::Backfill { chain, from } => {
                    let d = Delivery::Backfill { chain, from };
                    self.send(Role::Relayer, Role::Sequencer(chain), Class::Datagram, d);
                }
                RelayerEffect::Postconfirm { chain, height } => {
                    if let Err(e) = self.postconfirm(chain, height) {
                        self.relayer_stats.errors += 1;
                        if self.relayer_stats.error_samples.len() < ERROR_SAMPLES {
                            self.relayer_stats.error_samples.push(e);
                        }
                    }
                }
                RelayerEffect::Error(e) => {
                    *self
                        .relayer_stats
                        .error_kinds
                        .entry(kind_of(&e))
                        .or_default() += 1;
                    if self.relayer_stats.error_samples.len() < ERROR_SAMPLES {
                        self.relayer_stats
                            .error_samples
                            .push(format!("t={} ms: {e}", self.now));
                    }
                }
            }
        }
    }

    /// The relayer's report: what the role counted and what its shell did.
    fn relayer_report(&self) -> RelayerReport {
        let c = self.relayer.counters();
        let mut r = self.relayer_stats.clone();
        r.errors += c.errors;
        r.execute_retries = c.execute_retries;
        r.import_retries = c.import_retries;
        r.nonce_gaps_filled = c.nonce_gaps_filled;
        r.void_executions_replaced = c.void_executions_replaced;
        r.executions_dropped = c.executions_dropped;
        r.undeliverable_sender_fault = c.undeliverable_sender_fault;
        r.undeliverable_system = c.undeliverable_system;
        r.backfills = c.backfills;
        r.sl_backfills = c.sl_backfills;
        r
    }

    /// A backfill request reached `chain`'s sequencer: it resends its blocks from `from` to its
    /// head, each followed by the header of the batch it closes, on its feed to the relayer
    /// (lossy feeds may lose them again; the relayer then asks again).
    fn backfill(&mut self, chain: ChainId, from: BlockNumber) {
        let Some(mut head) = self.chains.get(&chain).map(|n| n.role.seq().head().number) else {
            return;
        };
        // blocks the SL voided and the sequencer has not rolled back yet are not served: the
        // re-sequenced ones follow (a relayer fed void blocks would relay their messages)
        if let Some(first) = self.invariants.voided.get(&chain) {
            match first.checked_sub(1) {
                Some(last) => head = head.min(last),
                None => return,
            }
        }
        let Some(log) = self.feed_log.get(&chain) else {
            return;
        };
        let mut sends = vec![];
        let mut hashes = BTreeMap::new();
        if from > head {
            return; // nothing canonical to serve yet (e.g. just rolled back)
        }
        for (number, (block, receipts)) in log.blocks.range(from..=head) {
            hashes.insert(*number, block.header.hash());
            sends.push(Delivery::Block {
                chain,
                block: block.clone(),
                receipts: receipts.clone(),
            });
        }
        // headers of the canonical batches ending in the range, after their last block
        let mut headers: Vec<(usize, BatchHeader)> = vec![];
        for h in log.headers.values() {
            if hashes.get(&h.lastBlock) == Some(&h.lastBlockHash) {
                let after = hashes.range(..=h.lastBlock).count();
                headers.push((after, h.clone()));
            }
        }
        for (after, header) in headers.into_iter().rev() {
            sends.insert(after, Delivery::BatchSealed { header });
        }
        self.relayer_stats.backfill_blocks += hashes.len() as u64;
        for d in sends {
            self.send(Role::Sequencer(chain), Role::Relayer, Class::Feed, d);
        }
    }

    fn relayer_execute_dropped(&mut self, id: MessageId) {
        let effects = self.relayer.execute_dropped(self.now, id);
        self.relayer_effects(effects);
    }

    fn relayer_import_dropped(&mut self, dest: ChainId, root: ImportedRoot) {
        let effects = self.relayer.import_refused(self.now, dest, root);
        self.relayer_effects(effects);
    }

    /// Requests not answered in time count as dropped (the network may have lost them); the
    /// role is told the time (executions whose backoff ended are retried).
    fn relayer_timeouts(&mut self) {
        let dests = LocalChains {
            chains: &mut self.chains,
            now_ms: self.now,
        };
        let effects = self.relayer.tick(self.now, &dests);
        self.relayer_effects(effects);
    }

    /// The chain whose (crashed) node a request is for: requests to a down node are lost.
    fn lost_while_down(&mut self, d: &Delivery) -> bool {
        let chain = match d {
            Delivery::UserTx { chain, .. } | Delivery::Backfill { chain, .. } => *chain,
            Delivery::Import { dest, .. } | Delivery::Execute { dest, .. } => *dest,
            _ => return false,
        };
        let now = self.now;
        match self.chains.get_mut(&chain) {
            Some(n) if n.down(now) => {
                n.stats.requests_lost_while_down += 1;
                true
            }
            _ => false,
        }
    }

    fn deliver(&mut self, d: Delivery) -> Result<(), String> {
        if self.lost_while_down(&d) {
            return Ok(());
        }
        match d {
            Delivery::UserTx { chain, traffic } => self.user_tx(chain, traffic),
            Delivery::Block {
                chain,
                block,
                receipts,
            } => {
                let _ = chain;
                let effects = self
                    .relayer
                    .handle(self.now, RelayerInput::SourceBlock { block, receipts });
                self.relayer_effects(effects);
            }
            Delivery::BatchSealed { header } => {
                let effects = self
                    .relayer
                    .handle(self.now, RelayerInput::BatchSealed { header });
                self.relayer_effects(effects);
            }
            Delivery::Backfill { chain, from } => self.backfill(chain, from),
            Delivery::BackfillSl { from, to } => {
                let blocks: Vec<Vec<SlEvent>> = self
                    .sl_feed_log
                    .range(from..=to.max(from))
                    .map(|(_, events)| events.clone())
                    .collect();
                for events in blocks {
                    let d = Delivery::SlToRelayer(events);
                    self.send(Role::Sl, Role::Relayer, Class::Feed, d);
                }
            }
            Delivery::SlCalls { chain, calls } => {
                for call in calls {
                    self.sl_call_arrived(chain, call)?;
                }
            }
            Delivery::SlToRelayer(events) => {
                let effects = self.relayer.observe_sl_block(self.now, &events);
                self.relayer_effects(effects);
            }
            Delivery::SlToOperator {
                chain,
                height,
                events,
            } => self.operator_observes(chain, height, events)?,
            Delivery::OperatorBackfillSl { chain, from, to } => {
                let blocks: Vec<(u64, Vec<SlEvent>)> = self
                    .sl_feed_log
                    .range(from..=to.max(from))
                    .map(|(h, events)| (*h, events.clone()))
                    .collect();
                for (h, events) in blocks {
                    self.send_operator_block(chain, h, &events);
                }
            }
            Delivery::Import { dest, root, epoch } => {
                let effects = match self.chains.get_mut(&dest) {
                    Some(node) => node.role.import(root, Some(epoch), &self.sl),
                    None => vec![],
                };
                for effect in effects {
                    self.chain_effect(dest, effect)?;
                }
            }
            Delivery::Execute {
                dest,
                message,
                proof,
            } => self.relayer_execute_arrived(dest, message, proof),
            Delivery::ExecuteDropped { id } => self.relayer_execute_dropped(id),
            Delivery::ValidatorBlock { validator, block } => self.validator_block(validator, block),
            Delivery::Vote { collector, vote } => self.collector_vote(collector, vote)?,
            Delivery::QcToDa {
                collector,
                node,
                qc,
            } => self.da_store(collector, node, qc),
            Delivery::DaAttested { attestation } => self.da_attested(attestation),
            Delivery::Certified {
                chain,
                height,
                block_hash,
            } => self.relayer_certified(chain, height, block_hash),
            Delivery::ImportRejected { dest, root } => self.relayer_import_dropped(dest, root),
            Delivery::TreeLevel {
                checkpoint,
                level,
                snapshot,
            } => self.relayer_tree_level(checkpoint, level, snapshot),
            Delivery::AggregatorCall { generation, call } => {
                self.aggregator_call_arrived(generation, call)?
            }
        }
        Ok(())
    }

    // ----- report -----

    fn final_state_hash(&self) -> B256 {
        let mut buf = Vec::with_capacity(self.chains.len() * 72 + 40);
        for (id, node) in &self.chains {
            let head = node.role.seq().head();
            buf.extend_from_slice(&id.to_be_bytes());
            buf.extend_from_slice(head.stateRoot.as_slice());
            buf.extend_from_slice(head.hash().as_slice());
        }
        buf.extend_from_slice(self.sl.message_tree().root().as_slice());
        buf.extend_from_slice(&self.sl.height().to_be_bytes());
        keccak256(&buf)
    }

    fn report(&self, wall_time_ms: u64) -> Report {
        let mut by_mode: BTreeMap<Mode, (ModeReport, Vec<u64>, Vec<u64>)> = BTreeMap::new();
        let modes: BTreeSet<Mode> = self.scenario.traffic.iter().map(|t| t.mode).collect();
        for m in modes {
            by_mode.entry(m).or_default();
        }
        for t in self.messages.values() {
            let (r, lat, settle) = by_mode.entry(t.mode).or_default();
            r.sent += 1;
            if let Some(e) = t.executed_at {
                r.executed += 1;
                lat.push(e.saturating_sub(t.sent_at));
            }
            if let Some(s) = t.settled_at {
                r.settled += 1;
                settle.push(s.saturating_sub(t.sent_at));
            }
        }
        let modes = by_mode
            .into_iter()
            .map(|(m, (mut r, mut lat, settle))| {
                r.latency_ms = LatencyStats::of(&lat);
                lat.sort_unstable();
                r.latency_samples_ms = lat;
                r.settle_latency_ms = LatencyStats::of(&settle);
                (braid_primitives::ImportKind::from(m).name().to_string(), r)
            })
            .collect();
        let chains = self
            .chains
            .iter()
            .map(|(id, n)| {
                let mut s = n.stats.clone();
                s.head = n.role.seq().head().number;
                (*id, s)
            })
            .collect();
        let c = &self.net.counters;
        Report {
            scenario: self.scenario.name.clone(),
            seed: self.seed,
            replay: self.scenario.replay_command(self.seed),
            modes,
            chains,
            sl_height: self.sl.height(),
            sl_txs_rejected: self.sl_txs_rejected,
            sl_rejections: self.sl_rejections.clone(),
            network: NetworkReport {
                sent: c.sent,
                delivered: c.delivered,
                dropped: c.dropped,
                retransmitted: c.retransmitted,
                held_by_partition: c.held_by_partition,
            },
            relayer: self.relayer_report(),
            faults: self.faults.clone(),
            forced_settlements: self.forced_settlements,
            council: self.council_stats.clone(),
            reverts: self.revert_stats.clone(),
            revert_log: self.revert_log.clone(),
            executions: self.executions.clone(),
            adversary: self.adversary_stats.clone(),
            finality: self.finality.as_ref().map(|f| f.report()),
            optimistic: self
                .optimistic
                .as_ref()
                .map(|o| o.report(self.sl.config().optimistic.chains.len())),
            aggregation: self.aggregation.as_ref().map(|a| a.report(&self.sl)),
            deposits: (!self.scenario.deposits.is_empty()).then(|| {
                let mut d = self.deposit_stats.clone();
                d.time_to_inclusion_ms = LatencyStats::of(&self.deposit_inclusion);
                d.time_to_settlement_ms = LatencyStats::of(&self.deposit_settlement);
                d
            }),
            events_processed: self.events,
            virtual_duration_ms: self.now,
            wall_time_ms,
            invariant_violations: self
                .violation
                .iter()
                .chain(&self.liveness_violations)
                .cloned()
                .collect(),
            liveness: self.liveness.clone(),
            final_state_hash: self.final_state_hash(),
        }
    }
}

/// The operator waits a round trip to the SL before re-issuing a call, so
/// link latency does not make it send every call twice.
fn operator_config(id: u64, scenario: &Scenario) -> OperatorConfig {
    let mut c = OperatorConfig::new(id);
    c.settled_by_proposals = scenario.optimistic.as_ref().is_some_and(|o| o.covers(id));
    c.settled_by_tree = scenario
        .aggregation
        .as_ref()
        .is_some_and(|a| a.tree_chains(&scenario.chain_ids()).contains(&id));
    c.tree = scenario
        .aggregation
        .as_ref()
        .map(|a| (a.tree_chains(&scenario.chain_ids()), a.checkpoint_blocks));
    let round_trip = 2 * (scenario.link.latency_ms + scenario.link.jitter_ms);
    c.resend_after_blocks = 1 + round_trip.div_ceil(scenario.sl_block_time_ms.max(1));
    c
}
