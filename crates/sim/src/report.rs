//! The report of a run (serialised as `report.json`; schema in `docs/simulator.md`).

use std::collections::BTreeMap;

use alloy_primitives::B256;
use braid_primitives::ChainId;
use serde::{Deserialize, Serialize};

/// Latency percentiles (nearest rank) over a set of samples, in ms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
}

impl LatencyStats {
    /// Percentiles of `samples` (all zero when empty).
    pub fn of(samples: &[u64]) -> Self {
        let mut s = samples.to_vec();
        s.sort_unstable();
        let rank = |p: u64| -> u64 {
            if s.is_empty() {
                return 0;
            }
            let n = s.len() as u64;
            let idx = (p * n).div_ceil(100).clamp(1, n) - 1;
            s.get(idx as usize).copied().unwrap_or(0)
        };
        Self {
            count: s.len() as u64,
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max: s.last().copied().unwrap_or(0),
        }
    }
}

/// Messages of one mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeReport {
    /// Messages sent (seen in a source block).
    pub sent: u64,
    /// Messages executed on their destination.
    pub executed: u64,
    /// Send (source block time) to execution (destination block time).
    pub latency_ms: LatencyStats,
    /// Messages whose source batch executed on the SL.
    pub settled: u64,
    /// Send (source block time) to the SL block executing the source batch.
    pub settle_latency_ms: LatencyStats,
    /// Every send-to-execution latency, sorted (the latency CDF of `report.html`).
    pub latency_samples_ms: Vec<u64>,
}

/// A batch executed on the SL, for the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchExecution {
    /// SL time.
    pub at_ms: u64,
    /// The chain.
    pub chain: ChainId,
    /// The batch.
    pub batch: u64,
}

/// One chain's batches and blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// Blocks produced (re-sequenced blocks count again).
    pub blocks: u64,
    /// SL blocks the operator's feed lost and fetched again (lossy feeds).
    #[serde(default)]
    pub sl_backfills: u64,
    /// Batches sealed by the sequencer.
    pub batches_sealed: u64,
    /// Batches committed on the SL.
    pub batches_committed: u64,
    /// Batches executed on the SL.
    pub batches_executed: u64,
    /// Batches reverted on the SL.
    pub batches_reverted: u64,
    /// User transactions that reached the sequencer and entered its pool.
    pub user_txs_accepted: u64,
    /// User transactions refused by the pool.
    pub user_txs_rejected: u64,
    /// Virtual time the operator was stalled.
    pub operator_stalled_ms: u64,
    /// Crashes of the chain's node.
    pub crashes: u64,
    /// Virtual time the node was down.
    pub downtime_ms: u64,
    /// Pooled transactions lost in crashes (the pool is not persisted).
    pub pool_txs_lost: u64,
    /// Requests (user transactions, imports, executions) that reached the node while it was
    /// down and were lost.
    pub requests_lost_while_down: u64,
    /// Batches executed after the security council requested their execution (forced).
    pub batches_forced: u64,
    /// Pooled transactions dropped at block building, by execution error (`NonceTooLow`,
    /// `BadProof`, `AlreadyExecuted`, ...).
    pub txs_dropped: BTreeMap<String, u64>,
    /// User transactions of blocks discarded by a revert that did not go back into the pool,
    /// by reason (`NonceTaken`, `AlreadyKnown`): none is lost silently.
    #[serde(default)]
    pub txs_not_repooled: BTreeMap<String, u64>,
    /// Imports the sequencer refused, by error.
    pub imports_rejected: BTreeMap<String, u64>,
    /// Head block number at the end.
    pub head: u64,
}

/// Network counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkReport {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages delivered (or scheduled for delivery when the run ended).
    pub delivered: u64,
    /// Messages lost (loss, drop windows, partitions).
    pub dropped: u64,
    /// Retransmissions on reliable feeds.
    pub retransmitted: u64,
    /// Feed messages held until a partition healed.
    pub held_by_partition: u64,
}

/// What the relayer shell saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayerReport {
    /// Error actions of the relayer core.
    pub errors: u64,
    /// The first few errors, as text.
    pub error_samples: Vec<String>,
    /// Executions re-requested after a drop report or a timeout.
    pub execute_retries: u64,
    /// Imports re-requested after a rejection or a timeout.
    pub import_retries: u64,
    /// No-op transactions sent to fill a nonce gap a failed execution left (its later
    /// transactions waited behind it).
    #[serde(default)]
    pub nonce_gaps_filled: u64,
    /// Executions a revert of their destination put back into its pool, withdrawn at once
    /// (evicted and replaced by a no-op at the same nonce, reported to the core as dropped so
    /// it executes again what still needs it) before they failed one per block.
    #[serde(default)]
    pub void_executions_replaced: u64,
    /// Execution transactions the destination dropped or refused.
    pub executions_dropped: u64,
    /// Messages the relayer core found it can never deliver through the sender's fault (e.g. a
    /// destination it does not serve): `RelayerError::Undeliverable` with `Fault::Sender`.
    #[serde(default)]
    pub undeliverable_sender_fault: u64,
    /// Messages the relayer core found it can never deliver through the system's fault (e.g. its
    /// MessageRoot mirror diverged): `RelayerError::Undeliverable` with `Fault::System`.
    #[serde(default)]
    pub undeliverable_system: u64,
    /// Error actions of the relayer core by `RelayerError` variant (`ParentMismatch`,
    /// `BlockOutOfOrder`, `LocalRootMismatch`, `BadBatchHeader`, ...): the inconsistencies it
    /// detected in what the chains and the SL told it.
    pub error_kinds: BTreeMap<String, u64>,
    /// Backfill requests of the relayer core (after a gap, a fork or a missing batch header),
    /// first requests and repeats.
    #[serde(default)]
    pub backfills: u64,
    /// Blocks the sequencers resent to answer backfill requests.
    #[serde(default)]
    pub backfill_blocks: u64,
    /// Requests of the relayer core for SL blocks whose events it missed.
    #[serde(default)]
    pub sl_backfills: u64,
}

/// What the security council did (forced settlement and reverts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouncilReport {
    /// `commitBatch` calls the council submitted.
    pub commits: u64,
    /// `proveBatch` calls the council submitted.
    pub proofs: u64,
    /// `executeBatch` calls the council submitted.
    pub execution_requests: u64,
    /// Proofs the SL refused to the council (the batch cannot be proven: it reverts it).
    pub proofs_refused: u64,
    /// `revertBatches` calls the council submitted.
    pub reverts: u64,
}

/// `BatchesReverted` events by cause, and batches reverted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertReport {
    /// Reverts requested by a chain's operator.
    pub by_operator: u64,
    /// Reverts requested by the security council.
    pub by_council: u64,
    /// Reverts in cascade (the batch imported from a reverted batch or block).
    pub cascade: u64,
    /// Reverts of a batch holding an import the source's committed batch contradicts (an
    /// equivocating sequencer's block, or a voided one).
    #[serde(default)]
    pub contradicted: u64,
    /// Batches reverted, over all events.
    pub batches: u64,
}

/// One `BatchesReverted` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertRecord {
    /// SL time.
    pub at_ms: u64,
    /// The chain.
    pub chain: ChainId,
    /// First reverted batch.
    pub from: u64,
    /// Last reverted batch.
    pub to: u64,
    /// `operator`, `council`, `anyone` or `cascade from <chain>/<batch>`.
    pub cause: String,
}

/// The adversary's replayed and forged `executeMessage` transactions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdversaryReport {
    /// Replays submitted.
    pub replays_submitted: u64,
    /// Replays the destination dropped with `AlreadyExecuted`.
    pub replays_rejected: u64,
    /// Forgeries submitted.
    pub forgeries_submitted: u64,
    /// Forgeries the destination dropped with `BadProof`.
    pub forgeries_rejected: u64,
    /// Adversarial transactions that executed (must stay 0).
    pub accepted: u64,
    /// Every drop or refusal, by `kind: error` (e.g. `replay: AlreadyExecuted`).
    pub rejections: BTreeMap<String, u64>,
    /// Faults that found nothing to replay or forge yet (no executed message on the chain).
    pub skipped: u64,
}

/// A fault as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// The fault's kind as in scenario files (`operator_stall`, `crash`, ...).
    pub kind: String,
    /// The chain, if the fault targets one.
    pub chain: Option<ChainId>,
    /// Start.
    pub start_ms: u64,
    /// End.
    pub end_ms: u64,
    /// What the fault did, when it is not obvious (the tampered batch, the equivocated block,
    /// the message replayed, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An invariant that failed; the run stops at the first one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Which invariant.
    pub invariant: String,
    /// What was seen.
    pub detail: String,
    /// Virtual time.
    pub at_ms: u64,
    /// Index of the event after which it was seen.
    pub event: u64,
    /// The seed.
    pub seed: u64,
    /// The command that replays the run.
    pub replay: String,
}

/// Fast finality (seed 002): validators, QCs, DA, postconfirmation, slashing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FinalityReport {
    /// Validators.
    pub validators: u32,
    /// DA nodes.
    pub da_nodes: u32,
    /// `leader_based` or `leader_free`.
    pub aggregation: String,
    /// Byzantine validators and their behaviour.
    pub byzantine: Vec<(u32, String)>,
    /// Validator sets fixed on the SL.
    pub epochs: u64,
    /// Blocks delivered to the validators.
    pub blocks_seen: u64,
    /// Blocks a validator could not vote on (missed parent, not in the set yet).
    pub blocks_not_voted: u64,
    /// Blocks the simulator made invalid (wrong state root) and showed the validators.
    pub invalid_blocks_proposed: u64,
    /// Blocks with a quorum certificate.
    pub blocks_certified: u64,
    /// Blocks L2-final: QC plus DA availability certificate.
    pub blocks_final: u64,
    /// From block timestamp to its QC.
    pub time_to_qc_ms: LatencyStats,
    /// From block timestamp to L2-final (QC + availability certificate).
    pub time_to_l2_final_ms: LatencyStats,
    /// From block timestamp to its postconfirmation on the SL.
    pub time_to_postconfirmation_ms: LatencyStats,
    /// QCs verified and recorded by the SL.
    pub postconfirmations: u64,
    /// Equivocations the aggregators detected.
    pub equivocations_detected: u64,
    /// Votes an aggregator refused (bad signature, pruned height, not in the set).
    pub votes_refused: u64,
    /// Votes `withhold` validators did not send: one per block they would have voted on.
    #[serde(default)]
    pub votes_withheld: u64,
    /// Slashes on the SL, in order.
    pub slashes: Vec<SlashRecord>,
}

/// Aggregated settlement (seed 001): the shared proof aggregator's tree and its roots on the SL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AggregationReport {
    /// Chains under the tree.
    pub chains: usize,
    /// Depth of the tree (level of the root).
    pub depth: u8,
    /// Blocks per checkpoint.
    pub checkpoint_blocks: u64,
    /// Virtual time between checkpoints (`checkpoint_blocks` × block time).
    pub checkpoint_interval_ms: u64,
    /// Modelled time of a leaf proof.
    pub leaf_prove_ms: u64,
    /// Modelled time of a node proof (a level's nodes in parallel).
    pub node_prove_ms: u64,
    /// Modelled time from a checkpoint's statements to its root proof.
    pub root_prove_ms: u64,
    /// Checkpoints the aggregators proved (including roots the SL then refused).
    pub checkpoints_proven: u64,
    /// Root proofs the SL accepted.
    pub roots_accepted: u64,
    /// Root proofs the SL verified and accepted, per accepted checkpoint, for all chains
    /// together (1.0: one verification per checkpoint).
    pub sl_verifications_per_checkpoint: f64,
    /// Batches proven by accepted roots.
    pub batches_proven_by_roots: u64,
    /// Root proofs the SL refused, by reason.
    pub roots_refused: BTreeMap<String, u64>,
    /// Batches proven alone through the emergency exit.
    pub emergency_exits: u64,
    /// Chains that used the emergency exit.
    pub chains_exited: Vec<ChainId>,
    /// Statements the tree could not aggregate because of a forged import (each distinct
    /// statement once).
    pub forged_imports_rejected_by_tree: u64,
    /// Batches the SL failed for a forged or unsettleable tree import.
    pub batches_failed_on_imports: u64,
    /// Forged imports injected into sequencers.
    pub forged_imports_injected: u64,
    /// Largest and mean number of exported hashes of one proof, per level (0 = leaves).
    pub exports_per_level: Vec<LevelExports>,
    /// Size of the last accepted root proof (re-execution backend, the one the SL verified).
    pub root_proof_bytes_reexec: u64,
    /// Size of a plonky2 root proof for the same tree (`docs/benchmarks.md`: constant).
    pub root_proof_bytes_plonky2_model: u64,
    /// From the last block of a checkpoint to its root's acceptance on the SL.
    pub checkpoint_to_root_ms: LatencyStats,
    /// When the successor took over, and from which accepted checkpoint it resumed.
    pub takeover: Option<Takeover>,
    /// Times the working aggregator went back to the last accepted root after the SL refused
    /// one of its roots.
    pub resyncs: u64,
    /// The last checkpoint accepted on the SL.
    pub last_accepted_checkpoint: u64,
}

/// Exported hashes per proof at one level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelExports {
    /// Level (0 = leaves).
    pub level: u8,
    /// Proofs counted.
    pub proofs: u64,
    /// Largest number of exports of one proof.
    pub max: u64,
    /// Mean number of exports per proof.
    pub mean: f64,
}

/// A successor aggregator taking over the tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Takeover {
    /// When.
    pub at_ms: u64,
    /// The last accepted checkpoint it resumed from.
    pub resumed_from_checkpoint: u64,
    /// Roots it got accepted.
    pub roots_accepted: u64,
}

/// Optimistic settlement (seed 004): proposals, games, bonds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimisticReport {
    /// Chains settled by proposals.
    pub chains: usize,
    /// Parts per split.
    pub k: u64,
    /// The challenge window.
    pub challenge_window_ms: u64,
    /// Each side's clock reserve.
    pub clock_ms: u64,
    /// Each side's allowance per move it may have to make (a game on `n` steps gives each side
    /// `clock_ms + (ceil(log_k n) + 1) × move_ms`).
    #[serde(default)]
    pub move_ms: u64,
    /// Agents: label → SL address.
    pub agents: Vec<(String, String)>,
    /// Proposals posted.
    pub proposals: u64,
    /// Proposals that became final.
    pub proposals_final: u64,
    /// Proposals defeated in a game.
    pub proposals_defeated: u64,
    /// Challenges opened.
    pub challenges: u64,
    /// Game moves accepted (splits and choices).
    pub moves: u64,
    /// Every finished game, in order.
    pub games: Vec<GameStat>,
    /// From a batch's commit to its end state being final on the SL.
    pub time_to_final_ms: LatencyStats,
    /// Bonds taken from losers (wei).
    pub bonds_slashed_wei: String,
    /// Of which paid to winners (wei).
    pub bonds_paid_wei: String,
    /// Of which burned (wei).
    pub bonds_burned_wei: String,
}

/// One finished dispute game.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameStat {
    /// The chain.
    pub chain: ChainId,
    /// The batch.
    pub batch: u64,
    /// Steps of the batch's trace.
    pub steps: u64,
    /// Each side's clock in this game, sized from `steps`.
    #[serde(default)]
    pub clock_ms: u64,
    /// Rounds played.
    pub rounds: u32,
    /// `ceil(log_k steps)`: the rounds a game played to the end needs.
    pub rounds_needed: u32,
    /// From the challenge to the end.
    pub duration_ms: u64,
    /// `proposer` or `challenger`.
    pub winner: String,
    /// The winner's agent label.
    pub winner_agent: String,
    /// The loser's agent label.
    pub loser_agent: String,
    /// `single_step` or `clock`.
    pub decided_by: String,
    /// Gas-like cost of the single step, if the verifier ruled.
    pub step_gas: Option<u64>,
    /// The loser's bond taken (wei).
    pub slashed_wei: String,
}

/// SL deposits and their inclusion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DepositReport {
    /// Deposits queued on the SL.
    pub queued: u64,
    /// Deposits settled (applied by an executed batch of their chain).
    pub settled: u64,
    /// Deposits a censoring chain node held back from its sequencer (`censor_deposits`; handed
    /// over when the fault ends).
    #[serde(default)]
    pub censored: u64,
    /// Batches that could not settle because they skipped an overdue deposit.
    pub batches_failed_censorship: u64,
    /// From queueing to the first block applying it (last inclusion, after reverts).
    pub time_to_inclusion_ms: LatencyStats,
    /// From queueing to settlement.
    pub time_to_settlement_ms: LatencyStats,
}

/// One slash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlashRecord {
    /// SL time.
    pub at_ms: u64,
    /// The validator (scenario index).
    pub validator: u32,
    /// `equivocation` or `invalid_accept`.
    pub reason: String,
}

/// The report of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// The command that replays this run.
    pub replay: String,
    /// Per mode (`precommit`, `commit`, `proof`).
    pub modes: BTreeMap<String, ModeReport>,
    /// Per chain.
    pub chains: BTreeMap<ChainId, ChainReport>,
    /// SL height at the end.
    pub sl_height: u64,
    /// SL transactions refused (at submission or inclusion), mostly stale nonces or calls
    /// the operator re-issued after the SL already applied them.
    pub sl_txs_rejected: u64,
    /// The rejections by `call: error kind`.
    pub sl_rejections: BTreeMap<String, u64>,
    /// Network counters.
    pub network: NetworkReport,
    /// Relayer counters.
    pub relayer: RelayerReport,
    /// Faults injected.
    pub faults: Vec<FaultRecord>,
    /// Batches executed after the security council requested their execution.
    pub forced_settlements: u64,
    /// The security council's calls.
    pub council: CouncilReport,
    /// Reverts by cause.
    pub reverts: RevertReport,
    /// Every revert, in order.
    pub revert_log: Vec<RevertRecord>,
    /// Every batch execution on the SL, in order.
    pub executions: Vec<BatchExecution>,
    /// Replays and forgeries.
    pub adversary: AdversaryReport,
    /// Fast finality, when the scenario has validators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finality: Option<FinalityReport>,
    /// Optimistic settlement, when the scenario has `[optimistic]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimistic: Option<OptimisticReport>,
    /// Aggregated settlement, when the scenario has `[aggregation]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<AggregationReport>,
    /// SL deposits, when the scenario has deposit traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposits: Option<DepositReport>,
    /// Events processed.
    pub events_processed: u64,
    /// Virtual time simulated (less than the scenario's if an invariant stopped the run).
    pub virtual_duration_ms: u64,
    /// Wall-clock time of the run (the only field that differs between identical runs).
    pub wall_time_ms: u64,
    /// Invariant violations: the safety violation that stopped the run, or the liveness ones
    /// found at its end (`message_delivered`, `chain_settles`); empty when all held.
    pub invariant_violations: Vec<Violation>,
    /// The liveness check at the end of the run: stuck messages and stalled chains.
    #[serde(default)]
    pub liveness: LivenessReport,
    /// keccak256 over every chain's (id, state root, head hash), then the SL's MessageRoot and
    /// height.
    pub final_state_hash: B256,
}

/// The liveness check at the end of a run (see `docs/simulator.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivenessReport {
    /// The quiet point: the last fault's end or the end of traffic, whichever is later.
    pub quiet_at_ms: u64,
    /// The drain window after it.
    pub drain_ms: u64,
    /// When the check ran (the end of the run).
    pub checked_at_ms: u64,
    /// Messages whose source batch settled on the SL but which were never executed.
    pub stuck_count: u64,
    /// The first of them.
    pub stuck_messages: Vec<StuckMessage>,
    /// Chains that executed no batch on the SL in the last half of the drain window.
    pub stalled_chains: Vec<StalledChain>,
}

/// A message whose source settled but which never executed on its destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StuckMessage {
    /// `source:nonce`.
    pub id: String,
    /// The mode it asked for.
    pub mode: String,
    /// The destination chain.
    pub dest: ChainId,
    /// When it was sent (source block time).
    pub sent_at_ms: u64,
    /// When its source batch executed on the SL.
    pub settled_at_ms: u64,
    /// What it waits for, as the relayer sees it.
    pub waiting: String,
}

/// A chain that stopped executing batches on the SL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StalledChain {
    /// The chain.
    pub chain: ChainId,
    /// Its last batch execution on the SL, if any.
    pub last_batch_executed_at_ms: Option<u64>,
    /// Batches executed in the run.
    pub batches_executed: u64,
    /// Its head block at the end.
    pub head: u64,
    /// What its first unexecuted batch waits for, as the SL sees it (status, whether execution
    /// was requested, a failed check, its imports by kind), or why there is none.
    #[serde(default)]
    pub waiting: String,
}

impl Report {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The names of the invariants violated, in report order (empty when all held).
    pub fn violated(&self) -> Vec<&str> {
        self.invariant_violations
            .iter()
            .map(|v| v.invariant.as_str())
            .collect()
    }

    /// The mode's numbers (zero if the mode carried no traffic).
    pub fn mode(&self, name: &str) -> ModeReport {
        self.modes.get(name).cloned().unwrap_or_default()
    }
}
