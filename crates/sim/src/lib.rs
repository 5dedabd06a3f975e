//! Braid's discrete-event simulator: the real sans-IO cores (settlement layer, sequencers,
//! operators, relayer) wired as in the devnet, but under virtual time, without persistence, with
//! a seeded network model, timed faults, invariant checkers after every event and a JSON report.
//!
//! ```no_run
//! let scenario = braid_sim::Scenario::load("scenarios/basic.toml")?;
//! let report = braid_sim::run(&scenario, scenario.seed)?;
//! assert!(report.invariant_violations.is_empty());
//! # Ok::<(), braid_sim::SimError>(())
//! ```
//!
//! Everything random (link jitter and loss, traffic arrivals) comes from one
//! `rand_chacha::ChaCha8Rng` seeded with the run's seed, and every event is ordered by
//! `(virtual time, sequence number)`: the same scenario and seed give the same run. See
//! `docs/simulator.md` for the scenario format, what is modelled and the report schema.

mod engine;
mod generate;
mod html;
mod invariants;
mod net;
mod report;
mod scenario;
mod swarm;

pub use engine::{run, run_until, run_with_progress};
pub use generate::{generate, generated, Disturbance, GenerateOptions};
pub use html::render_html;
pub use report::{
    AggregationReport, BatchExecution, ChainReport, DepositReport, FaultRecord, FinalityReport,
    GameStat, LatencyStats, LevelExports, LivenessReport, ModeReport, NetworkReport,
    OptimisticReport, RelayerReport, Report, SlashRecord, StalledChain, StuckMessage, Takeover,
    Violation,
};
pub use scenario::{
    Aggregation, AggregationSpec, AggregatorAdversary, AggregatorBehaviour, Behaviour,
    ByzantineSpec, ChainsSpec, DepositTraffic, Fault, FeedDelivery, FinalitySpec, ForgedImport,
    LinkSpec, Mode, OptimisticAdversary, OptimisticBehaviour, OptimisticSpec, RelayerSpec,
    Scenario, Traffic, MAX_CHAINS,
};
pub use swarm::{swarm, swarm_variant, SwarmRun};

use braid_primitives::ChainId;

/// Errors of the simulator: bad scenarios, and cores that refuse to start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// The scenario file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        error: String,
    },
    /// The scenario is not valid TOML or does not fit the schema.
    #[error("invalid scenario: {0}")]
    Parse(String),
    /// A parameter that must be positive is zero.
    #[error("{0} must be positive")]
    ZeroParameter(&'static str),
    /// Too few or too many chains.
    #[error("a scenario needs between 1 and {MAX_CHAINS} chains, got {0}")]
    ChainCount(usize),
    /// A chain id listed twice.
    #[error("chain {0} is listed twice")]
    DuplicateChain(ChainId),
    /// A chain id reserved for the settlement layer.
    #[error("chain id {0} is reserved for the settlement layer")]
    ReservedChainId(ChainId),
    /// Traffic or a fault names a chain the scenario does not have.
    #[error("{context} names unknown chain {chain}")]
    UnknownChain {
        /// Where (`traffic[2]`, `faults[0]`).
        context: String,
        /// The chain.
        chain: ChainId,
    },
    /// Traffic from a chain to itself.
    #[error("traffic[{index}] sends from chain {chain} to itself")]
    SelfTraffic {
        /// Index of the traffic entry.
        index: usize,
        /// The chain.
        chain: ChainId,
    },
    /// A traffic rate that is not a positive finite number.
    #[error("traffic[{index}]: rate_per_s must be positive and finite, got {rate}")]
    BadRate {
        /// Index of the traffic entry.
        index: usize,
        /// The rate.
        rate: f64,
    },
    /// Link loss outside `[0, 1)`.
    #[error("link.loss must be in [0, 1), got {0}")]
    LossOutOfRange(f64),
    /// A drop fraction outside `[0, 1]`.
    #[error("faults[{index}]: fraction must be in [0, 1], got {fraction}")]
    FractionOutOfRange {
        /// Index of the fault.
        index: usize,
        /// The fraction.
        fraction: f64,
    },
    /// `[optimistic]` clocks an honest agent could lose a game on.
    #[error("optimistic clocks: {0}")]
    DisputeClock(#[from] braid_settlement::ClockRuleError),
    /// A core refused to start or failed in a way the simulator cannot continue from.
    #[error("core error: {0}")]
    Core(String),
}
