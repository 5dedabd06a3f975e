//! Generated adversarial scenarios: a whole scenario — topology, settlement modes, traffic and
//! overlapping faults of every kind — drawn from one seed.
//!
//! [`generated`]`(seed, options)` is a pure function of its arguments (a `ChaCha8Rng` seeded
//! with `seed`), and the scenario it returns is run with the same seed, so
//! `braid sim --generate 1 --seed S` replays generated run `S` exactly; `--out DIR` also writes
//! the scenario as TOML (`generated-S.toml`) to read, edit and run as a file.
//!
//! What a seed draws:
//! - 2–8 chains, block time, batch size, SL block time, operator timeout, link latency, jitter
//!   and loss;
//! - which of the six modes are live: `precommit`, `commit` and `proof` always; `qc` with a
//!   validator set (4–7 validators, leader-based or leader-free, some of them Byzantine);
//!   `optimistic` over a subset of the chains, with wrong-root, griefing and stalling agents;
//!   `aggregated` over a disjoint subset, with a checkpoint interval long enough for its tree,
//!   and a stalling, withholding or lying aggregator, a successor, forged tree imports;
//! - 1–12 traffic routes between random pairs in live modes, from light to heavy, some carrying
//!   value, and SL deposits;
//! - 0–5 faults of the allowed kinds at random times within the traffic window, overlapping
//!   freely: operator stalls, partitions, drop windows, crashes, reverts, wrong state roots,
//!   equivocation, replays, forgeries, deposit censorship.
//!
//! Every generated scenario passes [`Scenario::validate`] (a test checks many seeds).

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::scenario::{
    AggregationSpec, AggregatorAdversary, AggregatorBehaviour, Behaviour, ByzantineSpec,
    ChainsSpec, DepositTraffic, FinalitySpec, ForgedImport, LinkSpec, OptimisticAdversary,
    OptimisticBehaviour, OptimisticSpec, RelayerSpec,
};
use crate::{run, Aggregation, Fault, Mode, Scenario, SwarmRun};

/// The kinds of disturbance a generator may draw. Each is a fault kind of the scenario format
/// or an adversary of a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Disturbance {
    /// `operator_stall`.
    OperatorStall,
    /// `partition`.
    Partition,
    /// `drop_messages`.
    DropMessages,
    /// `crash`.
    Crash,
    /// `revert_batch`.
    RevertBatch,
    /// `wrong_state_root`.
    WrongStateRoot,
    /// `equivocation`.
    Equivocation,
    /// `replay` and `forgery`.
    ReplayForgery,
    /// `censor_deposits`.
    CensorDeposits,
    /// Byzantine validators (equivocating, accepting invalid blocks, withholding votes).
    ByzantineValidators,
    /// A stalling, withholding or lying aggregator, its successor, forged tree imports.
    AggregatorAdversary,
    /// Wrong-root proposers and griefing challengers, stalling or not.
    OptimisticAdversary,
}

impl Disturbance {
    /// Every kind.
    pub const ALL: [Disturbance; 12] = [
        Disturbance::OperatorStall,
        Disturbance::Partition,
        Disturbance::DropMessages,
        Disturbance::Crash,
        Disturbance::RevertBatch,
        Disturbance::WrongStateRoot,
        Disturbance::Equivocation,
        Disturbance::ReplayForgery,
        Disturbance::CensorDeposits,
        Disturbance::ByzantineValidators,
        Disturbance::AggregatorAdversary,
        Disturbance::OptimisticAdversary,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Disturbance::OperatorStall => "operator_stall",
            Disturbance::Partition => "partition",
            Disturbance::DropMessages => "drop_messages",
            Disturbance::Crash => "crash",
            Disturbance::RevertBatch => "revert_batch",
            Disturbance::WrongStateRoot => "wrong_state_root",
            Disturbance::Equivocation => "equivocation",
            Disturbance::ReplayForgery => "replay_forgery",
            Disturbance::CensorDeposits => "censor_deposits",
            Disturbance::ByzantineValidators => "byzantine_validators",
            Disturbance::AggregatorAdversary => "aggregator_adversary",
            Disturbance::OptimisticAdversary => "optimistic_adversary",
        }
    }

    /// Parses a name of [`Disturbance::name`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// What a generator may draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Disturbances it may inject.
    pub disturbances: BTreeSet<Disturbance>,
    /// Modes it may enable (`precommit`, `commit` and `proof` are always among them).
    pub modes: BTreeSet<Mode>,
    /// Most chains (at least 2, at most 8).
    pub max_chains: u64,
}

impl Default for GenerateOptions {
    /// Everything: all six modes, every disturbance, up to 8 chains.
    fn default() -> Self {
        Self {
            disturbances: Disturbance::ALL.into_iter().collect(),
            modes: [
                Mode::Precommit,
                Mode::Commit,
                Mode::Proof,
                Mode::Qc,
                Mode::Optimistic,
                Mode::Aggregated,
            ]
            .into_iter()
            .collect(),
            max_chains: 8,
        }
    }
}

/// Seeds are mixed with this before drawing, so a generated scenario's draws differ from the
/// run's own use of the same seed.
const GENERATE_DOMAIN: u64 = 0x4745_4e45_5241_5445;

/// The scenario generated from `seed` (see the module docs).
pub fn generated(seed: u64, options: &GenerateOptions) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ GENERATE_DOMAIN);
    let allowed = |d: Disturbance| options.disturbances.contains(&d);
    let n = rng.gen_range(2..=options.max_chains.clamp(2, 8));
    let ids: Vec<u64> = (0..n).map(|i| 901 + i).collect();
    let block_time_ms = *[500u64, 1_000, 1_000].choose(&mut rng).unwrap_or(&1_000);
    let batch_blocks = rng.gen_range(2..=4u64);
    let sl_block_time_ms = *[1_000u64, 1_000, 2_000].choose(&mut rng).unwrap_or(&1_000);
    let timeout_operator_ms = *[15_000u64, 20_000, 30_000]
        .choose(&mut rng)
        .unwrap_or(&30_000);
    let traffic_stop_ms = rng.gen_range(10..=30u64) * 1_000;

    // which chains settle how: optimistic and the aggregation tree take disjoint subsets
    let mut pool = ids.clone();
    pool.shuffle(&mut rng);
    let want = |rng: &mut ChaCha8Rng, m: Mode| options.modes.contains(&m) && rng.gen_bool(0.4);
    let mut optimistic_chains = Vec::new();
    if want(&mut rng, Mode::Optimistic) && pool.len() >= 2 {
        let k = rng.gen_range(1..=pool.len() / 2);
        optimistic_chains = pool.split_off(pool.len() - k);
        optimistic_chains.sort_unstable();
    }
    let mut tree_chains = Vec::new();
    if want(&mut rng, Mode::Aggregated) && pool.len() >= 2 {
        let k = rng.gen_range(2..=pool.len().min(4));
        tree_chains = pool.split_off(pool.len() - k);
        tree_chains.sort_unstable();
    }
    let qc = want(&mut rng, Mode::Qc);

    let finality = qc.then(|| {
        let validators = rng.gen_range(4..=7u32);
        let mut byzantine = Vec::new();
        if allowed(Disturbance::ByzantineValidators) && rng.gen_bool(0.6) {
            // usually fewer than a third (finality must go on), sometimes a third or more
            // withholding (finality halts; qc messages must still arrive once settled)
            let max_faulty = if rng.gen_bool(0.2) {
                validators / 2
            } else {
                (validators - 1) / 3
            };
            let count = rng.gen_range(0..=max_faulty.max(1));
            let mut who: Vec<u32> = (0..validators).collect();
            who.shuffle(&mut rng);
            for v in who.into_iter().take(count as usize) {
                let behaviour = *[
                    Behaviour::Equivocate,
                    Behaviour::AcceptInvalid,
                    Behaviour::Withhold,
                ]
                .choose(&mut rng)
                .unwrap_or(&Behaviour::Withhold);
                byzantine.push(ByzantineSpec {
                    validator: v,
                    behaviour,
                });
            }
        }
        FinalitySpec {
            validators,
            stakes: vec![],
            da_nodes: rng.gen_range(3..=5),
            aggregation: if rng.gen_bool(0.5) {
                Aggregation::LeaderBased
            } else {
                Aggregation::LeaderFree
            },
            postconfirm_interval_ms: rng.gen_range(3..=10u64) * 1_000,
            epoch_ms: 30_000,
            byzantine,
        }
    });

    let optimistic = (!optimistic_chains.is_empty()).then(|| {
        let mut adversaries = Vec::new();
        if allowed(Disturbance::OptimisticAdversary) {
            for behaviour in [
                OptimisticBehaviour::WrongRoot,
                OptimisticBehaviour::Griefing,
            ] {
                if rng.gen_bool(0.4) {
                    adversaries.push(OptimisticAdversary {
                        behaviour,
                        stall: rng.gen_bool(0.3),
                    });
                }
            }
        }
        OptimisticSpec {
            chains: Some(optimistic_chains.clone()),
            challenge_window_ms: rng.gen_range(5..=15u64) * 1_000,
            k: *[2u64, 4, 8, 16].choose(&mut rng).unwrap_or(&4),
            clock_ms: rng.gen_range(4..=20u64) * 1_000,
            move_ms: None,
            proposers: rng.gen_range(1..=2),
            challengers: rng.gen_range(1..=2),
            adversaries,
        }
    });

    let aggregation = (!tree_chains.is_empty()).then(|| {
        let leaf_prove_ms = 100;
        let node_prove_ms = 1_500;
        // the level where the two farthest tree chains meet must be proven within two
        // checkpoints (`Scenario::validate`): size the checkpoint from the tree's depth
        let depth = u64::from(usize::BITS - (tree_chains.len() - 1).leading_zeros());
        let ready = leaf_prove_ms + depth * node_prove_ms + block_time_ms + sl_block_time_ms;
        let min_blocks = ready.div_ceil(2 * block_time_ms);
        let checkpoint_blocks = min_blocks.div_ceil(batch_blocks).max(1) * batch_blocks
            + batch_blocks * rng.gen_range(0..=1u64);
        let mut spec = AggregationSpec {
            chains: Some(tree_chains.clone()),
            checkpoint_blocks,
            aggregator_timeout_ms: rng.gen_range(15..=30u64) * 1_000,
            leaf_prove_ms,
            node_prove_ms,
            adversary: None,
            takeover_at_ms: None,
            forged_imports: vec![],
        };
        if allowed(Disturbance::AggregatorAdversary) && rng.gen_bool(0.5) {
            let behaviour = *[
                AggregatorBehaviour::Stall,
                AggregatorBehaviour::Withhold,
                AggregatorBehaviour::WrongPrevHash,
            ]
            .choose(&mut rng)
            .unwrap_or(&AggregatorBehaviour::Stall);
            let from_ms = rng.gen_range(2_000..traffic_stop_ms);
            spec.adversary = Some(AggregatorAdversary {
                behaviour,
                from_ms,
                chain: (behaviour == AggregatorBehaviour::Withhold)
                    .then(|| tree_chains[rng.gen_range(0..tree_chains.len())]),
            });
            if rng.gen_bool(0.6) {
                spec.takeover_at_ms = Some(from_ms + rng.gen_range(20_000..=40_000u64));
            }
        }
        if allowed(Disturbance::AggregatorAdversary) && rng.gen_bool(0.2) {
            spec.forged_imports.push(ForgedImport {
                chain: tree_chains[rng.gen_range(0..tree_chains.len())],
                at_ms: rng.gen_range(5_000..traffic_stop_ms.max(5_001)),
            });
        }
        spec
    });

    // traffic: random ordered pairs in the modes they can use
    let mut traffic = Vec::new();
    let routes = rng.gen_range(1..=12usize);
    for _ in 0..routes {
        let from = ids[rng.gen_range(0..ids.len())];
        let mut to = ids[rng.gen_range(0..ids.len())];
        if to == from {
            to = ids[(ids.iter().position(|c| *c == from).unwrap_or(0) + 1) % ids.len()];
        }
        let mut modes = vec![Mode::Precommit, Mode::Commit, Mode::Proof];
        if finality.is_some() {
            modes.push(Mode::Qc);
        }
        if optimistic_chains.contains(&from) {
            modes.push(Mode::Optimistic);
            modes.push(Mode::Optimistic);
        }
        if tree_chains.contains(&from) && tree_chains.contains(&to) {
            modes.push(Mode::Aggregated);
            modes.push(Mode::Aggregated);
        }
        modes.retain(|m| options.modes.contains(m));
        let Some(mode) = modes.choose(&mut rng).copied() else {
            continue;
        };
        let rate_per_s = if rng.gen_bool(0.15) {
            rng.gen_range(5.0..20.0)
        } else {
            rng.gen_range(0.3..3.0)
        };
        traffic.push(crate::Traffic {
            from,
            to,
            mode,
            rate_per_s,
            value_wei: if rng.gen_bool(0.5) { 1_000_000_000 } else { 0 },
        });
    }

    let mut deposits = Vec::new();
    if rng.gen_bool(0.3) {
        deposits.push(DepositTraffic {
            to: ids[rng.gen_range(0..ids.len())],
            rate_per_s: rng.gen_range(0.3..2.0),
            amount_wei: 1_000_000_000,
        });
    }

    // faults, overlapping freely within the traffic window
    // the fault kinds of the scenario format (the rest of `ALL` are role adversaries)
    let kinds: Vec<Disturbance> = Disturbance::ALL[..9]
        .iter()
        .copied()
        .filter(|d| allowed(*d))
        .collect();
    let mut faults = Vec::new();
    if !kinds.is_empty() {
        for _ in 0..rng.gen_range(0..=5usize) {
            let at_ms = rng.gen_range(1_000..traffic_stop_ms);
            let duration_ms = rng.gen_range(500..=15_000u64);
            let chain = ids[rng.gen_range(0..ids.len())];
            let kind = kinds[rng.gen_range(0..kinds.len())];
            faults.push(match kind {
                Disturbance::OperatorStall => Fault::OperatorStall {
                    at_ms,
                    chain,
                    duration_ms,
                },
                Disturbance::Partition => Fault::Partition {
                    at_ms,
                    chain,
                    duration_ms,
                },
                Disturbance::DropMessages => Fault::DropMessages {
                    at_ms,
                    fraction: rng.gen_range(0.0..=0.5),
                    duration_ms,
                },
                Disturbance::Crash => Fault::Crash {
                    at_ms,
                    chain,
                    duration_ms,
                },
                Disturbance::RevertBatch => Fault::RevertBatch {
                    at_ms,
                    chain,
                    duration_ms,
                },
                Disturbance::WrongStateRoot => Fault::WrongStateRoot { at_ms, chain },
                Disturbance::Equivocation => Fault::Equivocation { at_ms, chain },
                Disturbance::ReplayForgery if rng.gen_bool(0.5) => Fault::Replay { at_ms, chain },
                Disturbance::ReplayForgery => Fault::Forgery { at_ms, chain },
                _ => Fault::CensorDeposits {
                    at_ms,
                    chain,
                    duration_ms,
                },
            });
        }
    }

    Scenario {
        name: format!("generated-{seed}"),
        seed,
        duration_ms: traffic_stop_ms + 10_000,
        traffic_stop_ms: Some(traffic_stop_ms),
        chains: ChainsSpec::Count(n),
        block_time_ms,
        batch_blocks,
        sl_block_time_ms,
        operator_tick_ms: 250,
        proof_time_ms: *[0u64, 0, 500, 2_000].choose(&mut rng).unwrap_or(&0),
        timeout_operator_ms,
        timeout_council_ms: timeout_operator_ms * 2,
        link: LinkSpec {
            latency_ms: rng.gen_range(0..=100),
            jitter_ms: rng.gen_range(0..=100),
            loss: if rng.gen_bool(0.3) {
                rng.gen_range(0.0..0.05)
            } else {
                0.0
            },
            ..LinkSpec::default()
        },
        relayer: RelayerSpec::default(),
        traffic,
        faults,
        finality,
        optimistic,
        aggregation,
        deposits,
        deposit_inclusion_window_ms: 10_000,
        drain_ms: None,
        source: None,
    }
}

/// Runs generated scenarios for seeds `first_seed..first_seed + count` on `jobs` threads,
/// calling `progress` after each run (in completion order). Returns the runs in seed order.
/// With `stop_at_failure`, no new seed starts after a failing one.
pub fn generate(
    options: &GenerateOptions,
    first_seed: u64,
    count: u64,
    jobs: usize,
    stop_at_failure: bool,
    progress: &(dyn Fn(&SwarmRun) + Sync),
) -> Vec<SwarmRun> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Mutex;
    let next = AtomicU64::new(first_seed);
    let end = first_seed.saturating_add(count);
    let failed = AtomicBool::new(false);
    let runs = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                if stop_at_failure && failed.load(Ordering::Relaxed) {
                    break;
                }
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
                let scenario = generated(seed, options);
                let result = scenario.validate().and_then(|()| run(&scenario, seed));
                let r = SwarmRun {
                    seed,
                    injected: scenario.faults.clone(),
                    result,
                };
                if !r.passed() {
                    failed.store(true, Ordering::Relaxed);
                }
                progress(&r);
                if let Ok(mut v) = runs.lock() {
                    v.push(r);
                }
            });
        }
    });
    let mut runs = runs.into_inner().unwrap_or_default();
    runs.sort_by_key(|r| r.seed);
    runs
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn generated_scenarios_are_valid_and_a_function_of_the_seed() {
        let all = GenerateOptions::default();
        let mut modes = BTreeSet::new();
        let mut kinds = BTreeSet::new();
        for seed in 0..400 {
            let s = generated(seed, &all);
            s.validate()
                .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{s:#?}"));
            assert_eq!(s, generated(seed, &all), "seed {seed} is not reproducible");
            let n = s.chain_ids().len();
            assert!((2..=8).contains(&n));
            modes.extend(s.traffic.iter().map(|t| t.mode));
            kinds.extend(s.faults.iter().map(Fault::kind));
            // a generated scenario round-trips through TOML (`--out` writes it for replay)
            let text = toml::to_string(&s).unwrap();
            assert_eq!(Scenario::from_toml(&text).unwrap(), s, "seed {seed}");
        }
        assert_eq!(modes.len(), 6, "every mode drawn: {modes:?}");
        assert_eq!(kinds.len(), 10, "every fault kind drawn: {kinds:?}");
    }

    #[test]
    fn options_restrict_what_is_drawn() {
        let calm = GenerateOptions {
            disturbances: BTreeSet::new(),
            modes: [Mode::Precommit, Mode::Proof].into_iter().collect(),
            max_chains: 3,
        };
        for seed in 0..100 {
            let s = generated(seed, &calm);
            assert!(s.faults.is_empty());
            assert!(s.finality.is_none() && s.optimistic.is_none() && s.aggregation.is_none());
            assert!(s
                .traffic
                .iter()
                .all(|t| matches!(t.mode, Mode::Precommit | Mode::Proof)));
            assert!(s.chain_ids().len() <= 3);
        }
    }
}
