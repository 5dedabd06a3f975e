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
}

impl From<Mode> for ImportKind {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Precommit => ImportKind::Precommit,
            Mode::Commit => ImportKind::Commit,
            Mode::Proof => ImportKind::Proof,
        }
    }
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

/// A timed fault. The enum is open: crash/restart, equivocation, wrong state root, revert and
/// forged proofs come later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The chain's operator core is not ticked (it submits nothing) for `duration_ms`.
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
}

impl Fault {
    /// When the fault starts.
    pub fn at_ms(&self) -> u64 {
        match self {
            Fault::OperatorStall { at_ms, .. }
            | Fault::Partition { at_ms, .. }
            | Fault::DropMessages { at_ms, .. } => *at_ms,
        }
    }

    /// How long it lasts.
    pub fn duration_ms(&self) -> u64 {
        match self {
            Fault::OperatorStall { duration_ms, .. }
            | Fault::Partition { duration_ms, .. }
            | Fault::DropMessages { duration_ms, .. } => *duration_ms,
        }
    }

    /// The fault's kind, as written in scenario files.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::OperatorStall { .. } => "operator_stall",
            Fault::Partition { .. } => "partition",
            Fault::DropMessages { .. } => "drop_messages",
        }
    }

    /// The chain the fault targets, if any.
    pub fn chain(&self) -> Option<ChainId> {
        match self {
            Fault::OperatorStall { chain, .. } | Fault::Partition { chain, .. } => Some(*chain),
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
        zero("relayer.retry_ms", self.relayer.retry_ms)?;
        zero("link.retransmit_ms", self.link.retransmit_ms)?;
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
        for (index, f) in self.faults.iter().enumerate() {
            if f.duration_ms() == 0 {
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
