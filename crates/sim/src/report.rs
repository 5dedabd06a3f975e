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
}

/// One chain's batches and blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// Blocks produced (re-sequenced blocks count again).
    pub blocks: u64,
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
    /// Execution transactions the destination dropped or refused.
    pub executions_dropped: u64,
}

/// A fault as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// `operator_stall`, `partition`, `drop_messages`.
    pub kind: String,
    /// The chain, if the fault targets one.
    pub chain: Option<ChainId>,
    /// Start.
    pub start_ms: u64,
    /// End.
    pub end_ms: u64,
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
    /// Events processed.
    pub events_processed: u64,
    /// Virtual time simulated (less than the scenario's if an invariant stopped the run).
    pub virtual_duration_ms: u64,
    /// Wall-clock time of the run (the only field that differs between identical runs).
    pub wall_time_ms: u64,
    /// Invariant violations (empty, or the one that stopped the run).
    pub invariant_violations: Vec<Violation>,
    /// keccak256 over every chain's (id, state root, head hash), then the SL's MessageRoot and
    /// height.
    pub final_state_hash: B256,
}

impl Report {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The mode's numbers (zero if the mode carried no traffic).
    pub fn mode(&self, name: &str) -> ModeReport {
        self.modes.get(name).cloned().unwrap_or_default()
    }
}
