//! Swarm testing: one scenario, many seeds, each with randomised network and fault settings.
//!
//! For seed `s` the swarm derives, from a `ChaCha8Rng` seeded with `s`, a variant of the base
//! scenario: link latency in `0..=2×base+50` ms, jitter in `0..=100` ms, loss in `0..=0.05`, and
//! one to three extra faults (operator stall, partition, dropped messages) at random times within
//! the traffic window. The variant is then run with seed `s`, so `swarm_variant(base, s)` plus
//! `run(variant, s)` replays any swarm run exactly (`braid sim FILE --swarm 1 --seed s`). Each
//! [`SwarmRun`] lists the faults its seed injected; its report's `faults` shows them happen.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{run, Fault, Report, Scenario, SimError};

/// The outcome of one swarm run.
#[derive(Debug)]
pub struct SwarmRun {
    /// The seed (of both the variant and the run).
    pub seed: u64,
    /// The faults the run injected: those a swarm variant added to its base scenario's (at
    /// least one), or every fault of a generated scenario ([`crate::generate`]).
    pub injected: Vec<Fault>,
    /// The report, or why the run could not start.
    pub result: Result<Report, SimError>,
}

impl SwarmRun {
    /// Whether the run completed with no invariant violation.
    pub fn passed(&self) -> bool {
        self.result
            .as_ref()
            .is_ok_and(|r| r.invariant_violations.is_empty())
    }
}

/// The randomised variant of `base` for `seed` (see the module docs).
pub fn swarm_variant(base: &Scenario, seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5741_524d_0000_0000);
    let mut s = base.clone();
    s.name = format!("{} (swarm seed {seed})", base.name);
    s.link.latency_ms =
        rng.gen_range(0..=base.link.latency_ms.saturating_mul(2).saturating_add(50));
    s.link.jitter_ms = rng.gen_range(0..=100);
    s.link.loss = rng.gen_range(0.0..=0.05);
    let chains = base.chain_ids();
    let window = base.traffic_stop_ms().max(1);
    // a draw of none injects one: every seed injects a fault (the draw is kept so that the
    // variants of every other seed are unchanged)
    let extra = rng.gen_range(0..=3).max(1);
    for _ in 0..extra {
        let at_ms = rng.gen_range(0..window);
        let duration_ms = rng.gen_range(500..=10_000u64);
        let fault = match (rng.gen_range(0..3), chains.is_empty()) {
            (0, false) => Fault::OperatorStall {
                at_ms,
                chain: chains[rng.gen_range(0..chains.len())],
                duration_ms,
            },
            (1, false) => Fault::Partition {
                at_ms,
                chain: chains[rng.gen_range(0..chains.len())],
                duration_ms,
            },
            _ => Fault::DropMessages {
                at_ms,
                fraction: rng.gen_range(0.0..=0.3),
                duration_ms,
            },
        };
        s.faults.push(fault);
    }
    s
}

/// Runs `count` swarm variants of `base` with seeds `first_seed..`, calling `progress` after
/// each run. Stops early at the first failing run if `stop_at_failure`.
pub fn swarm(
    base: &Scenario,
    first_seed: u64,
    count: u64,
    stop_at_failure: bool,
    mut progress: impl FnMut(&SwarmRun),
) -> Vec<SwarmRun> {
    let mut runs = Vec::new();
    for seed in first_seed..first_seed.saturating_add(count) {
        let variant = swarm_variant(base, seed);
        let result = variant.validate().and_then(|()| run(&variant, seed));
        let injected = variant
            .faults
            .get(base.faults.len()..)
            .unwrap_or(&[])
            .to_vec();
        let r = SwarmRun {
            seed,
            injected,
            result,
        };
        progress(&r);
        let failed = !r.passed();
        runs.push(r);
        if failed && stop_at_failure {
            break;
        }
    }
    runs
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn base() -> Scenario {
        Scenario::from_toml(
            r#"
            name = "swarm-base"
            duration_ms = 20_000
            traffic_stop_ms = 6_000
            chains = 2
            block_time_ms = 1_000
            batch_blocks = 2
            sl_block_time_ms = 1_000
            [[traffic]]
            from = 901
            to = 902
            mode = "precommit"
            rate_per_s = 1.0
            "#,
        )
        .unwrap()
    }

    #[test]
    fn variants_are_a_function_of_the_seed_and_differ_between_seeds() {
        let b = base();
        let v1 = swarm_variant(&b, 11);
        let again = swarm_variant(&b, 11);
        assert_eq!(v1.link.latency_ms, again.link.latency_ms);
        assert_eq!(v1.faults.len(), again.faults.len());
        assert_eq!(format!("{:?}", v1.faults), format!("{:?}", again.faults));
        let differs = (12..20).any(|s| {
            let v = swarm_variant(&b, s);
            v.link.latency_ms != v1.link.latency_ms || v.faults.len() != v1.faults.len()
        });
        assert!(differs);
        v1.validate().unwrap();
    }

    #[test]
    fn every_seed_injects_between_one_and_three_faults() {
        let b = base();
        let mut counts = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let v = swarm_variant(&b, seed);
            let extra = v.faults.len() - b.faults.len();
            assert!((1..=3).contains(&extra), "seed {seed}: {extra} faults");
            counts.insert(extra);
        }
        assert_eq!(counts.len(), 3, "{counts:?}");
    }

    #[test]
    fn a_swarm_runs_every_seed_and_replays_exactly() {
        let b = base();
        let mut seen = vec![];
        let runs = swarm(&b, 5, 4, true, |r| seen.push(r.seed));
        assert_eq!(seen, vec![5, 6, 7, 8]);
        assert!(runs.iter().all(SwarmRun::passed));
        // every run injected faults, and each of them happened
        for r in &runs {
            assert!(!r.injected.is_empty(), "seed {}", r.seed);
            assert_eq!(
                r.injected,
                swarm_variant(&b, r.seed).faults[b.faults.len()..]
            );
            let report = r.result.as_ref().unwrap();
            let mut injected: Vec<_> = r
                .injected
                .iter()
                .map(|f| (f.at_ms(), f.kind(), f.chain()))
                .collect();
            injected.sort_unstable();
            let happened: Vec<_> = report
                .faults
                .iter()
                .map(|f| (f.start_ms, f.kind.as_str(), f.chain))
                .collect();
            assert_eq!(happened, injected, "seed {}", r.seed);
        }
        // a swarm run is reproduced by its variant and seed
        let replay = run(&swarm_variant(&b, 6), 6).unwrap();
        let first = runs[1].result.as_ref().unwrap();
        assert_eq!(replay.final_state_hash, first.final_state_hash);
    }
}
