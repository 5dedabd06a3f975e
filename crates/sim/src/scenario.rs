//! Scenario files: what to simulate (chains, timing, links, traffic, faults), read from TOML and
//! validated into typed errors before anything runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use braid_primitives::{ChainId, ImportKind};
use serde::{Deserialize, Serialize};

use crate::SimError;

/// A simulation scenario (see `docs/simulator.md` for the file format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name shown in the report.
    pub name: String,
    /// Default seed (`--seed` overrides it).
    #[serde(default)]
    pub seed: u64,
    /// Virtual time to simulate.
    pub duration_ms: u64,
    /// Traffic stops at this time (default: `duration_ms`); the rest of the run drains.
    #[serde(default)]
    pub traffic_stop_ms: Option<u64>,
    /// The chains: a count (ids 901, 902, ...) or a list of ids.
    pub chains: ChainsSpec,
    /// Block time of every chain.
    #[serde(default = "default_block_time_ms")]
    pub block_time_ms: u64,
    /// Blocks per batch.
    #[serde(default = "default_batch_blocks")]
    pub batch_blocks: u64,
    /// SL block time.
    #[serde(default = "default_block_time_ms")]
    pub sl_block_time_ms: u64,
    /// How often each operator core is ticked.
    #[serde(default = "default_operator_tick_ms")]
    pub operator_tick_ms: u64,
    /// Modelled proving delay: a batch's proof is submitted no earlier than this long after
    /// its operator saw the batch committed (0: at once, as the re-execution backend allows).
    #[serde(default)]
    pub proof_time_ms: u64,
    /// The SL's `timeout_operator_ms`: after a chain has made no progress this long (its
    /// operator idle, or its oldest unexecuted batch waiting), the security council settles it
    /// (forced settlement) and reverts what cannot be proven.
    #[serde(default = "default_timeout_operator_ms")]
    pub timeout_operator_ms: u64,
    /// The SL's `timeout_council_ms` (after which anyone may settle); at least
    /// `timeout_operator_ms`.
    #[serde(default = "default_timeout_council_ms")]
    pub timeout_council_ms: u64,
    /// The network between roles.
    #[serde(default)]
    pub link: LinkSpec,
    /// The relayer shell's retry policy.
    #[serde(default)]
    pub relayer: RelayerSpec,
    /// Message traffic.
    #[serde(default)]
    pub traffic: Vec<Traffic>,
    /// Timed faults.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Fast-finality settlement (seed 002): validators, DA nodes, Byzantine validators.
    /// Absent: no validators (and no `qc` traffic).
    #[serde(default)]
    pub finality: Option<FinalitySpec>,
    /// Optimistic settlement (seed 004): proposers, challengers, games and their adversaries.
    /// Absent: every chain is proven (and no `optimistic` traffic).
    #[serde(default)]
    pub optimistic: Option<OptimisticSpec>,
    /// Aggregated settlement (seed 001): the shared proof aggregator, its tree over the chains,
    /// its adversaries and a successor. Absent: no tree (and no `aggregated` traffic).
    #[serde(default)]
    pub aggregation: Option<AggregationSpec>,
    /// SL deposits to chains (forced transactions their sequencers must include).
    #[serde(default)]
    pub deposits: Vec<DepositTraffic>,
    /// The SL's `deposit_inclusion_window_ms`: a batch whose blocks reach this far past a
    /// queued deposit without applying it cannot settle.
    #[serde(default = "default_deposit_window_ms")]
    pub deposit_inclusion_window_ms: u64,
    /// Liveness drain window: the run lasts at least this long after the last fault ends and
    /// traffic stops ([`Scenario::quiet_at_ms`]); by its end every message whose source batch
    /// the SL executed must be executed on its destination, and every chain must still be
    /// executing batches. Default: [`Scenario::drain_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_ms: Option<u64>,
    /// The file the scenario was read from (for the replay command), if any.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

fn default_block_time_ms() -> u64 {
    1_000
}
fn default_batch_blocks() -> u64 {
    5
}
fn default_operator_tick_ms() -> u64 {
    250
}
fn default_timeout_operator_ms() -> u64 {
    60_000
}
fn default_timeout_council_ms() -> u64 {
    300_000
}

/// The chains of a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChainsSpec {
    /// `n` chains with ids 901, 902, ...
    Count(u64),
    /// Explicit chain ids.
    Ids(Vec<ChainId>),
}

/// How feeds (ordered streams: blocks and batches to the relayer, SL events to the relayer and
/// the operators) treat a lost packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedDelivery {
    /// A reliable ordered stream (TCP-like): a lost packet is retransmitted after
    /// `retransmit_ms`, later packets wait behind it; a partition holds the stream until it heals.
    #[default]
    Reliable,
    /// Feeds lose packets like any other message (the cores see gaps).
    Lossy,
}

/// Link settings, applied to every message between roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkSpec {
    /// One-way base latency.
    pub latency_ms: u64,
    /// Extra latency, uniform in `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Probability that a packet is lost, in `[0, 1)`.
    pub loss: f64,
    /// How feeds treat lost packets.
    pub feeds: FeedDelivery,
    /// Retransmission delay of a reliable feed after a lost packet.
    pub retransmit_ms: u64,
}

impl Default for LinkSpec {
    fn default() -> Self {
        Self {
            latency_ms: 20,
            jitter_ms: 0,
            loss: 0.0,
            feeds: FeedDelivery::Reliable,
            retransmit_ms: 200,
        }
    }
}

/// The relayer shell's retry policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayerSpec {
    /// An import or execution not seen on its destination this long after it was sent is
    /// reported to the relayer core as dropped (it asks again).
    pub retry_ms: u64,
}

impl Default for RelayerSpec {
    fn default() -> Self {
        Self { retry_ms: 5_000 }
    }
}

/// A message mode, as written in scenario files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Import the source's LocalRoot after each block.
    Precommit,
    /// Import the source's ChainBatchRoot once committed.
    Commit,
    /// Import the SL's MessageRoot once the source batch executed.
    Proof,
    /// Import the source's LocalRoot once validators certified the block (needs `[finality]`).
    Qc,
    /// Import the source's ChainBatchRoot once an optimistic proposal for the batch is final
    /// (needs `[optimistic]`).
    Optimistic,
    /// Import the aggregation tree's node hash above both chains once the aggregator proved it
    /// (needs `[aggregation]`).
    Aggregated,
}

impl From<Mode> for ImportKind {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Precommit => ImportKind::Precommit,
            Mode::Commit => ImportKind::Commit,
            Mode::Proof => ImportKind::Proof,
            Mode::Qc => ImportKind::Qc,
            Mode::Optimistic => ImportKind::Optimistic,
            Mode::Aggregated => ImportKind::Aggregated,
        }
    }
}

/// Validators, DA nodes and their adversaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalitySpec {
    /// Number of validators (they validate every chain).
    pub validators: u32,
    /// Stake of each validator (default: 100 each); length must match `validators`.
    #[serde(default)]
    pub stakes: Vec<u64>,
    /// Number of DA nodes; an availability certificate needs more than two thirds of them.
    #[serde(default = "default_da_nodes")]
    pub da_nodes: u32,
    /// Who aggregates votes into QCs.
    #[serde(default)]
    pub aggregation: Aggregation,
    /// Every this long, the latest L2-final QC of each chain is posted to the SL.
    #[serde(default = "default_postconfirm_interval_ms")]
    pub postconfirm_interval_ms: u64,
    /// Length of a validator epoch on the SL (slashed validators leave at the next one).
    #[serde(default = "default_epoch_ms")]
    pub epoch_ms: u64,
    /// Validators that misbehave.
    #[serde(default)]
    pub byzantine: Vec<ByzantineSpec>,
}

fn default_da_nodes() -> u32 {
    3
}
fn default_postconfirm_interval_ms() -> u64 {
    10_000
}
fn default_epoch_ms() -> u64 {
    30_000
}

/// Vote aggregation (seed 002's two variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Validators send votes to a leader (validator 0), which forms the QC.
    #[default]
    LeaderBased,
    /// Validators broadcast votes; every validator aggregates; the first QC counts.
    LeaderFree,
}

/// A Byzantine validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByzantineSpec {
    /// The validator (0-based, in scenario order).
    pub validator: u32,
    /// What it does.
    pub behaviour: Behaviour,
}

/// Byzantine validator behaviours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// Besides its honest vote, accepts a second (fabricated) block at every height.
    Equivocate,
    /// Accepts every block, valid or not.
    AcceptInvalid,
    /// Never votes.
    Withhold,
}

impl Behaviour {
    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Equivocate => "equivocate",
            Behaviour::AcceptInvalid => "accept_invalid",
            Behaviour::Withhold => "withhold",
        }
    }
}

impl FinalitySpec {
    /// Stake of validator `i`.
    pub fn stake(&self, i: u32) -> u64 {
        self.stakes.get(i as usize).copied().unwrap_or(100)
    }

    /// Behaviour of validator `i` (None: honest).
    pub fn behaviour(&self, i: u32) -> Option<Behaviour> {
        self.byzantine
            .iter()
            .find(|b| b.validator == i)
            .map(|b| b.behaviour)
    }
}

/// The shared proof aggregator in a run (seed 001).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationSpec {
    /// Chains under the tree, in tree order (default: all, in scenario order).
    #[serde(default)]
    pub chains: Option<Vec<ChainId>>,
    /// Blocks per checkpoint (a multiple of `batch_blocks`).
    #[serde(default = "default_checkpoint_blocks")]
    pub checkpoint_blocks: u64,
    /// The SL's emergency-exit timeout.
    #[serde(default = "default_aggregator_timeout_ms")]
    pub aggregator_timeout_ms: u64,
    /// Modelled time to prove one leaf (a chain's checkpoint statement). Default: the plonky2
    /// leaf proof of `docs/benchmarks.md` (51-111 ms measured, contended).
    #[serde(default = "default_leaf_prove_ms")]
    pub leaf_prove_ms: u64,
    /// Modelled time to prove one tree node (two recursive verifications). Default: the
    /// plonky2 node proof, uncontended estimate of `docs/benchmarks.md` (1.4-1.6 s; 2-3 s
    /// measured while contended). A level's nodes are proven in parallel.
    #[serde(default = "default_node_prove_ms")]
    pub node_prove_ms: u64,
    /// Adversarial behaviour of the first aggregator from a time on.
    #[serde(default)]
    pub adversary: Option<AggregatorAdversary>,
    /// A second, honest aggregator takes the tree over from the SL's last accepted root at
    /// this time (the first one stops).
    #[serde(default)]
    pub takeover_at_ms: Option<u64>,
    /// Chains whose sequencer imports a forged tree hash (an ancestor's hash at the last
    /// accepted checkpoint, altered) at a time.
    #[serde(default)]
    pub forged_imports: Vec<ForgedImport>,
}

fn default_checkpoint_blocks() -> u64 {
    4
}
fn default_aggregator_timeout_ms() -> u64 {
    20_000
}
fn default_leaf_prove_ms() -> u64 {
    100
}
fn default_node_prove_ms() -> u64 {
    1_500
}

impl AggregationSpec {
    /// The tree's chains in order, given the scenario's chains.
    pub fn tree_chains(&self, all: &[ChainId]) -> Vec<ChainId> {
        self.chains.clone().unwrap_or_else(|| all.to_vec())
    }
}

/// What the misbehaving aggregator does, from `from_ms` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorAdversary {
    /// The behaviour.
    pub behaviour: AggregatorBehaviour,
    /// From when.
    pub from_ms: u64,
    /// For `withhold`: the chain whose statements it leaves out.
    #[serde(default)]
    pub chain: Option<ChainId>,
}

/// Adversarial aggregator behaviours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregatorBehaviour {
    /// Stops proving and submitting.
    Stall,
    /// Leaves one chain's statement `A_i` out: it keeps the chain's old block hash in the tree.
    Withhold,
    /// Feeds the root node a wrong hash two checkpoints back (the extra input).
    WrongPrevHash,
}

/// A forged tree-hash import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgedImport {
    /// The importing chain.
    pub chain: ChainId,
    /// When its sequencer receives the import.
    pub at_ms: u64,
}

/// Optimistic settlement in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimisticSpec {
    /// Chains settled by proposals (default: all).
    #[serde(default)]
    pub chains: Option<Vec<ChainId>>,
    /// A proposal is final this long after it was posted unless disputed.
    #[serde(default = "default_challenge_window_ms")]
    pub challenge_window_ms: u64,
    /// Parts per split of the dispute game.
    #[serde(default = "default_k")]
    pub k: u64,
    /// Each side's clock reserve: a game on `n` steps gives each side
    /// `clock_ms + (ceil(log_k n) + 1) × move_ms` (the SL's clock rule).
    #[serde(default = "default_clock_ms")]
    pub clock_ms: u64,
    /// Time allowed per move on top of the reserve (default: one SL block; not less).
    #[serde(default)]
    pub move_ms: Option<u64>,
    /// Honest proposers (each proposes every batch).
    #[serde(default = "default_one")]
    pub proposers: u32,
    /// Honest challengers (each checks every proposal).
    #[serde(default = "default_one")]
    pub challengers: u32,
    /// Adversarial agents.
    #[serde(default)]
    pub adversaries: Vec<OptimisticAdversary>,
}

fn default_challenge_window_ms() -> u64 {
    10_000
}
fn default_k() -> u64 {
    4
}
fn default_clock_ms() -> u64 {
    4_000
}
fn default_one() -> u32 {
    1
}

impl OptimisticSpec {
    /// Whether `chain` settles optimistically.
    pub fn covers(&self, chain: ChainId) -> bool {
        self.chains.as_ref().is_none_or(|c| c.contains(&chain))
    }
}

/// An adversarial optimistic agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct OptimisticAdversary {
    /// What it does.
    pub behaviour: OptimisticBehaviour,
    /// It stops moving in its games (its clock runs out).
    #[serde(default)]
    pub stall: bool,
}

/// Adversarial optimistic behaviours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimisticBehaviour {
    /// Proposes a wrong end state for every batch it can compute.
    WrongRoot,
    /// Challenges every proposal, right or wrong.
    Griefing,
}

/// SL deposits to a chain: a Poisson stream from a funded SL account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepositTraffic {
    /// The chain.
    pub to: ChainId,
    /// Mean deposits per second.
    pub rate_per_s: f64,
    /// Value of each, in wei.
    #[serde(default = "default_deposit_wei")]
    pub amount_wei: u64,
}

fn default_deposit_window_ms() -> u64 {
    10_000
}

fn default_deposit_wei() -> u64 {
    1_000_000_000
}

/// A stream of messages from one chain to another; arrivals are a Poisson process
/// (exponential inter-arrival times with mean `1000 / rate_per_s` ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Source chain.
    pub from: ChainId,
    /// Destination chain.
    pub to: ChainId,
    /// Mode the messages ask for.
    pub mode: Mode,
    /// Mean messages per second.
    pub rate_per_s: f64,
    /// Value carried by each message, in wei.
    #[serde(default)]
    pub value_wei: u64,
}

/// A timed fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The chain's operator core is not ticked (it submits nothing) for `duration_ms`. Once the
    /// chain has made no progress for `timeout_operator_ms`, the council settles it.
    OperatorStall {
        /// Start time.
        at_ms: u64,
        /// The chain.
        chain: ChainId,
        /// Length of the stall.
        duration_ms: u64,
    },
    /// Every link to and from the chain's nodes (sequencer, operator) drops everything for
    /// `duration_ms` (reliable feeds resume where they stopped when it heals).
    Partition {
        /// Start time.
        at_ms: u64,
        /// The chain.
        chain: ChainId,
        /// Length of the partition.
        duration_ms: u64,
    },
    /// Every message is dropped with probability `fraction` (on top of the link loss).
    DropMessages {
        /// Start time.
        at_ms: u64,
        /// Share of messages dropped, in `[0, 1]`.
        fraction: f64,
        /// Length of the window.
        duration_ms: u64,
    },
    /// The chain's node (sequencer, pool, operator) is down for `duration_ms`: requests to it
    /// are lost, its feeds wait, and it restarts from its last persisted block with an empty
    /// pool (`Sequencer::restore`).
    Crash {
        /// Start time.
        at_ms: u64,
        /// The chain.
        chain: ChainId,
        /// Downtime.
        duration_ms: u64,
    },
    /// The chain's operator only commits (no proofs, no execution requests) from `at_ms`, then,
    /// at `at_ms + duration_ms`, reverts its batches from the oldest unexecuted one.
    RevertBatch {
        /// Start of the commit-only window.
        at_ms: u64,
        /// The chain.
        chain: ChainId,
        /// Length of the commit-only window, ending with the revert.
        duration_ms: u64,
    },
    /// The first batch the chain seals at or after `at_ms` reaches its operator with a wrong
    /// state root (last block's `stateRoot`, and the batch header, DA commitment kept
    /// consistent): it commits it, its proof is refused, the council reverts it.
    WrongStateRoot {
        /// When.
        at_ms: u64,
        /// The chain.
        chain: ChainId,
    },
    /// The chain's sequencer equivocates at its first block at or after `at_ms`: it announces
    /// block `h` to the relayer, then builds a different block `h'` (same height, from an empty
    /// pool) on which it continues and which its batches commit.
    Equivocation {
        /// When.
        at_ms: u64,
        /// The chain.
        chain: ChainId,
    },
    /// An adversary submits to `chain` an `executeMessage` for a message already executed
    /// there, with the relayer's valid proof.
    Replay {
        /// When.
        at_ms: u64,
        /// The destination chain.
        chain: ChainId,
    },
    /// An adversary submits to `chain` an `executeMessage` for a message its source never sent
    /// (an executed message with a fresh nonce, ten times the value and another payload),
    /// with a doctored proof.
    Forgery {
        /// When.
        at_ms: u64,
        /// The destination chain.
        chain: ChainId,
    },
    /// The chain's sequencer leaves SL deposits out of its blocks for `duration_ms`. Past the
    /// SL's inclusion window its batches cannot settle; the operator reverts them and the
    /// re-sequenced blocks must carry the deposits.
    CensorDeposits {
        /// Start time.
        at_ms: u64,
        /// The chain.
        chain: ChainId,
        /// Length of the censorship.
        duration_ms: u64,
    },
}

impl Fault {
    /// When the fault starts.
    pub fn at_ms(&self) -> u64 {
        match self {
            Fault::OperatorStall { at_ms, .. }
            | Fault::Partition { at_ms, .. }
            | Fault::DropMessages { at_ms, .. }
            | Fault::Crash { at_ms, .. }
            | Fault::RevertBatch { at_ms, .. }
            | Fault::WrongStateRoot { at_ms, .. }
            | Fault::Equivocation { at_ms, .. }
            | Fault::Replay { at_ms, .. }
            | Fault::Forgery { at_ms, .. }
            | Fault::CensorDeposits { at_ms, .. } => *at_ms,
        }
    }

    /// How long it lasts (0 for instantaneous faults).
    pub fn duration_ms(&self) -> u64 {
        match self {
            Fault::OperatorStall { duration_ms, .. }
            | Fault::Partition { duration_ms, .. }
            | Fault::DropMessages { duration_ms, .. }
            | Fault::Crash { duration_ms, .. }
            | Fault::RevertBatch { duration_ms, .. }
            | Fault::CensorDeposits { duration_ms, .. } => *duration_ms,
            Fault::WrongStateRoot { .. }
            | Fault::Equivocation { .. }
            | Fault::Replay { .. }
            | Fault::Forgery { .. } => 0,
        }
    }

    /// Whether the fault happens at one instant (no `duration_ms`).
    pub fn instantaneous(&self) -> bool {
        matches!(
            self,
            Fault::WrongStateRoot { .. }
                | Fault::Equivocation { .. }
                | Fault::Replay { .. }
                | Fault::Forgery { .. }
        )
    }

    /// The fault's kind, as written in scenario files.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::OperatorStall { .. } => "operator_stall",
            Fault::Partition { .. } => "partition",
            Fault::DropMessages { .. } => "drop_messages",
            Fault::Crash { .. } => "crash",
            Fault::RevertBatch { .. } => "revert_batch",
            Fault::WrongStateRoot { .. } => "wrong_state_root",
            Fault::Equivocation { .. } => "equivocation",
            Fault::Replay { .. } => "replay",
            Fault::Forgery { .. } => "forgery",
            Fault::CensorDeposits { .. } => "censor_deposits",
        }
    }

    /// The chain the fault targets, if any.
    pub fn chain(&self) -> Option<ChainId> {
        match self {
            Fault::OperatorStall { chain, .. }
            | Fault::Partition { chain, .. }
            | Fault::Crash { chain, .. }
            | Fault::RevertBatch { chain, .. }
            | Fault::WrongStateRoot { chain, .. }
            | Fault::Equivocation { chain, .. }
            | Fault::Replay { chain, .. }
            | Fault::Forgery { chain, .. }
            | Fault::CensorDeposits { chain, .. } => Some(*chain),
            Fault::DropMessages { .. } => None,
        }
    }
}

/// Most chains a scenario may have.
pub const MAX_CHAINS: usize = 1_000;

impl Scenario {
    /// Parses and validates a scenario from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, SimError> {
        let s: Scenario = toml::from_str(text).map_err(|e| SimError::Parse(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// Reads, parses and validates a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SimError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| SimError::Io {
            path: path.display().to_string(),
            error: e.to_string(),
        })?;
        let mut s = Self::from_toml(&text)?;
        s.source = Some(path.to_path_buf());
        Ok(s)
    }

    /// The chain ids, in order.
    pub fn chain_ids(&self) -> Vec<ChainId> {
        match &self.chains {
            ChainsSpec::Count(n) => (0..*n).map(|i| 901 + i).collect(),
            ChainsSpec::Ids(ids) => ids.clone(),
        }
    }

    /// When traffic stops.
    pub fn traffic_stop_ms(&self) -> u64 {
        self.traffic_stop_ms
            .unwrap_or(self.duration_ms)
            .min(self.duration_ms)
    }

    /// When the last fault, adversary switch or traffic ends: from here on nothing disturbs the
    /// network but the persistent adversaries (Byzantine validators, optimistic agents), which
    /// the protocol must outlive.
    pub fn quiet_at_ms(&self) -> u64 {
        let faults = self
            .faults
            .iter()
            .map(|f| f.at_ms().saturating_add(f.duration_ms()));
        let aggregation = self.aggregation.iter().flat_map(|a| {
            a.adversary
                .map(|x| x.from_ms)
                .into_iter()
                .chain(a.takeover_at_ms)
                .chain(a.forged_imports.iter().map(|f| f.at_ms))
        });
        faults
            .chain(aggregation)
            .fold(self.traffic_stop_ms(), u64::max)
    }

    /// The liveness drain window: `drain_ms`, or by default the council's takeover delay
    /// (`timeout_operator_ms`) plus 30 s, plus the challenge window and the aggregator's
    /// emergency-exit timeout where those apply — long enough for a chain stuck at the quiet
    /// point to be settled by the council and its messages delivered.
    pub fn drain_ms(&self) -> u64 {
        self.drain_ms.unwrap_or_else(|| {
            self.timeout_operator_ms
                .saturating_add(30_000)
                .saturating_add(
                    self.optimistic
                        .as_ref()
                        .map_or(0, |o| o.challenge_window_ms),
                )
                .saturating_add(
                    self.aggregation
                        .as_ref()
                        .map_or(0, |a| a.aggregator_timeout_ms),
                )
        })
    }

    /// When the run ends: `duration_ms`, extended to the end of the drain window after the
    /// quiet point when that is later.
    pub fn run_end_ms(&self) -> u64 {
        self.duration_ms
            .max(self.quiet_at_ms().saturating_add(self.drain_ms()))
    }

    /// The command that replays this scenario with `seed`.
    pub fn replay_command(&self, seed: u64) -> String {
        let path = self.source.as_ref().map_or_else(
            || format!("{}.toml", self.name),
            |p| p.display().to_string(),
        );
        format!("braid sim {path} --seed {seed}")
    }

    /// Checks the scenario for values the simulator cannot run with.
    pub fn validate(&self) -> Result<(), SimError> {
        let zero = |field: &'static str, v: u64| {
            if v == 0 {
                Err(SimError::ZeroParameter(field))
            } else {
                Ok(())
            }
        };
        zero("duration_ms", self.duration_ms)?;
        zero("block_time_ms", self.block_time_ms)?;
        zero("batch_blocks", self.batch_blocks)?;
        zero("sl_block_time_ms", self.sl_block_time_ms)?;
        zero("operator_tick_ms", self.operator_tick_ms)?;
        zero("timeout_operator_ms", self.timeout_operator_ms)?;
        if self.timeout_council_ms < self.timeout_operator_ms {
            return Err(SimError::Parse(format!(
                "timeout_council_ms ({}) must be at least timeout_operator_ms ({})",
                self.timeout_council_ms, self.timeout_operator_ms
            )));
        }
        zero("relayer.retry_ms", self.relayer.retry_ms)?;
        zero("link.retransmit_ms", self.link.retransmit_ms)?;
        if self.drain_ms == Some(0) {
            return Err(SimError::ZeroParameter("drain_ms"));
        }
        let ids = self.chain_ids();
        if ids.is_empty() || ids.len() > MAX_CHAINS {
            return Err(SimError::ChainCount(ids.len()));
        }
        let mut seen = BTreeSet::new();
        for id in &ids {
            if *id == braid_primitives::SETTLEMENT_LAYER_CHAIN_ID {
                return Err(SimError::ReservedChainId(*id));
            }
            if !seen.insert(*id) {
                return Err(SimError::DuplicateChain(*id));
            }
        }
        if !(0.0..1.0).contains(&self.link.loss) {
            return Err(SimError::LossOutOfRange(self.link.loss));
        }
        for (index, t) in self.traffic.iter().enumerate() {
            for chain in [t.from, t.to] {
                if !seen.contains(&chain) {
                    return Err(SimError::UnknownChain {
                        context: format!("traffic[{index}]"),
                        chain,
                    });
                }
            }
            if t.from == t.to {
                return Err(SimError::SelfTraffic { index, chain: t.to });
            }
            if !(t.rate_per_s.is_finite() && t.rate_per_s > 0.0) {
                return Err(SimError::BadRate {
                    index,
                    rate: t.rate_per_s,
                });
            }
        }
        if let Some(f) = &self.finality {
            zero("finality.validators", u64::from(f.validators))?;
            zero("finality.da_nodes", u64::from(f.da_nodes))?;
            zero(
                "finality.postconfirm_interval_ms",
                f.postconfirm_interval_ms,
            )?;
            if !f.stakes.is_empty() && f.stakes.len() != f.validators as usize {
                return Err(SimError::Parse(format!(
                    "finality.stakes lists {} stakes for {} validators",
                    f.stakes.len(),
                    f.validators
                )));
            }
            if f.stakes.contains(&0) {
                return Err(SimError::ZeroParameter("finality.stakes[]"));
            }
            if f.validators > 1_000 || f.da_nodes > 100 {
                return Err(SimError::Parse(
                    "at most 1000 validators and 100 DA nodes".into(),
                ));
            }
            if let Some(b) = f.byzantine.iter().find(|b| b.validator >= f.validators) {
                return Err(SimError::Parse(format!(
                    "finality.byzantine names validator {} of {}",
                    b.validator, f.validators
                )));
            }
        } else if let Some(index) = self.traffic.iter().position(|t| t.mode == Mode::Qc) {
            return Err(SimError::Parse(format!(
                "traffic[{index}] asks for qc mode but the scenario has no [finality] validators"
            )));
        }
        if let Some(o) = &self.optimistic {
            zero("optimistic.challenge_window_ms", o.challenge_window_ms)?;
            zero("optimistic.clock_ms", o.clock_ms)?;
            if o.k < 2 {
                return Err(SimError::Parse("optimistic.k must be at least 2".into()));
            }
            if o.proposers == 0 {
                return Err(SimError::ZeroParameter("optimistic.proposers"));
            }
            // the SL's clock rule: every move may take one SL block (the agents run next to an
            // SL node and answer in the next block), so an allowance below that loses games
            braid_settlement::OptimisticConfig {
                k: o.k,
                clock_ms: o.clock_ms,
                move_ms: o.move_ms,
                ..braid_settlement::OptimisticConfig::default()
            }
            .check_clock(self.sl_block_time_ms)?;
            for chain in o.chains.iter().flatten() {
                if !seen.contains(chain) {
                    return Err(SimError::UnknownChain {
                        context: "optimistic.chains".into(),
                        chain: *chain,
                    });
                }
            }
        } else if let Some(index) = self.traffic.iter().position(|t| t.mode == Mode::Optimistic) {
            return Err(SimError::Parse(format!(
                "traffic[{index}] asks for optimistic mode but the scenario has no [optimistic] table"
            )));
        }
        if let Some(a) = &self.aggregation {
            zero("aggregation.checkpoint_blocks", a.checkpoint_blocks)?;
            zero("aggregation.aggregator_timeout_ms", a.aggregator_timeout_ms)?;
            if a.checkpoint_blocks % self.batch_blocks != 0 {
                return Err(SimError::Parse(
                    "aggregation.checkpoint_blocks must be a multiple of batch_blocks".into(),
                ));
            }
            let tree = a.tree_chains(&self.chain_ids());
            let named = tree
                .iter()
                .map(|c| ("aggregation.chains".to_string(), *c))
                .chain(
                    a.adversary
                        .and_then(|x| x.chain)
                        .map(|c| ("aggregation.adversary.chain".into(), c)),
                )
                .chain(
                    a.forged_imports
                        .iter()
                        .map(|f| ("aggregation.forged_imports".into(), f.chain)),
                );
            for (context, chain) in named {
                if !tree.contains(&chain) || !seen.contains(&chain) {
                    return Err(SimError::UnknownChain { context, chain });
                }
            }
            if let Some(o) = &self.optimistic {
                if let Some(c) = tree.iter().find(|c| o.covers(**c)) {
                    return Err(SimError::Parse(format!(
                        "chain {c} cannot settle both optimistically and with the aggregation tree"
                    )));
                }
            }
            if a.adversary
                .is_some_and(|x| x.behaviour == AggregatorBehaviour::Withhold && x.chain.is_none())
            {
                return Err(SimError::Parse(
                    "aggregation.adversary: withhold needs a chain".into(),
                ));
            }
            let position = |c: ChainId| tree.iter().position(|x| *x == c).map(|p| p as u32);
            // an import of checkpoint c settles in the tree only from the destination's blocks of
            // checkpoints c+1 and c+2: the level must be proven (after the statements are
            // committed, about a block and an SL block later) before that window closes
            let window_ms = 2 * a.checkpoint_blocks * self.block_time_ms;
            for (index, t) in self.traffic.iter().enumerate() {
                if t.mode != Mode::Aggregated {
                    continue;
                }
                let (Some(from), Some(to)) = (position(t.from), position(t.to)) else {
                    return Err(SimError::Parse(format!(
                        "traffic[{index}] asks for aggregated mode between chains not both in the tree"
                    )));
                };
                let level = braid_primitives::aggregation::common_ancestor_level(from, to);
                let ready_ms = a.leaf_prove_ms
                    + u64::from(level) * a.node_prove_ms
                    + self.block_time_ms
                    + self.sl_block_time_ms;
                if ready_ms > window_ms {
                    return Err(SimError::Parse(format!(
                        "traffic[{index}]: chains {} and {} meet at tree level {level}, proven about \
                         {ready_ms} ms after their checkpoint, but a tree import settles only \
                         within two checkpoints ({window_ms} ms): raise \
                         aggregation.checkpoint_blocks",
                        t.from, t.to
                    )));
                }
            }
        } else if let Some(index) = self.traffic.iter().position(|t| t.mode == Mode::Aggregated) {
            return Err(SimError::Parse(format!(
                "traffic[{index}] asks for aggregated mode but the scenario has no [aggregation] table"
            )));
        }
        for (index, d) in self.deposits.iter().enumerate() {
            if !seen.contains(&d.to) {
                return Err(SimError::UnknownChain {
                    context: format!("deposits[{index}]"),
                    chain: d.to,
                });
            }
            if !(d.rate_per_s > 0.0 && d.rate_per_s.is_finite()) {
                return Err(SimError::Parse(format!(
                    "deposits[{index}].rate_per_s must be positive"
                )));
            }
        }
        for (index, f) in self.faults.iter().enumerate() {
            if f.duration_ms() == 0 && !f.instantaneous() {
                return Err(SimError::ZeroParameter("faults[].duration_ms"));
            }
            if let Some(chain) = f.chain() {
                if !seen.contains(&chain) {
                    return Err(SimError::UnknownChain {
                        context: format!("faults[{index}]"),
                        chain,
                    });
                }
            }
            if let Fault::DropMessages { fraction, .. } = f {
                if !(0.0..=1.0).contains(fraction) {
                    return Err(SimError::FractionOutOfRange {
                        index,
                        fraction: *fraction,
                    });
                }
            }
        }
        Ok(())
    }
}
