#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use proptest::prelude::*;

/// A toy step function standing in for "apply transaction i": the single-step verifier below
/// re-executes it for real (nothing is accepted without recomputation).
fn step(pre: B256, i: u64) -> B256 {
    keccak256([pre.as_slice(), &i.to_be_bytes()].concat())
}

fn honest_trace(n: u64) -> Trace {
    let mut roots = vec![keccak256(b"genesis")];
    for i in 1..=n {
        let next = step(*roots.last().unwrap(), i);
        roots.push(next);
    }
    Trace::new(roots).unwrap()
}

/// The honest trace, wrong from position `from` on (a proposer that mis-executed step `from`).
fn wrong_trace(n: u64, from: u64) -> Trace {
    let honest = honest_trace(n);
    let roots = (0..=n)
        .map(|i| {
            let r = honest.root(i).unwrap();
            if i >= from {
                keccak256([r.as_slice(), b"wrong"].concat())
            } else {
                r
            }
        })
        .collect();
    Trace::new(roots).unwrap()
}

const CLOCK: u64 = 10_000;

fn open(proposer: &Trace, k: u64) -> DisputeGame {
    let n = proposer.steps();
    let (pre, pre_proof) = proposer.prove(0).unwrap();
    let (end, end_proof) = proposer.prove(n).unwrap();
    DisputeGame::open(
        GameConfig { k, clock_ms: CLOCK },
        proposer.commitment(),
        n,
        (pre, &pre_proof),
        (end, &end_proof),
        0,
    )
    .unwrap()
}

/// Plays to the end: the proposer splits from its trace, `choose` picks parts; the single step
/// is re-executed with the toy step function.
fn play(
    proposer: &Trace,
    k: u64,
    mut choose: impl FnMut(&[(u64, B256)], u64) -> usize,
) -> DisputeGame {
    let mut g = open(proposer, k);
    let mut now = 0;
    loop {
        now += 10;
        match g.phase().clone() {
            Phase::Split => {
                let (lo, hi) = g.range();
                let roots: Vec<_> = boundaries(lo, hi, k)
                    .iter()
                    .map(|p| proposer.prove(*p).unwrap())
                    .collect();
                g.split(now, &roots).unwrap();
            }
            Phase::Choose(points) => {
                let (_, hi) = g.range();
                let part = choose(&points, hi);
                g.choose(now, part).unwrap();
            }
            Phase::SingleStep { step: s, pre, .. } => {
                g.resolve_step(step(pre, s)).unwrap();
                return g;
            }
            Phase::Over(_) => return g,
        }
    }
}

#[test]
fn boundaries_split_evenly_and_rounds_follow_log_k() {
    assert_eq!(boundaries(0, 10, 2), vec![5]);
    assert_eq!(boundaries(0, 10, 4), vec![3, 5, 8]);
    assert_eq!(
        boundaries(0, 3, 16),
        vec![1, 2],
        "short ranges split into single steps"
    );
    assert_eq!(boundaries(4, 5, 2), Vec::<u64>::new());
    assert_eq!(rounds_needed(1_000, 2), 10);
    assert_eq!(rounds_needed(1_024, 2), 10);
    assert_eq!(rounds_needed(1_025, 2), 11);
    assert_eq!(rounds_needed(1_000_000, 16), 5);
    assert_eq!(rounds_needed(4_096, 4), 6);
    assert_eq!(rounds_needed(1, 4), 0);
}

#[test]
fn an_honest_challenger_defeats_a_wrong_root_in_log_k_rounds() {
    let truth = honest_trace(1_000);
    for k in [2, 4, 16] {
        let liar = wrong_trace(1_000, 377);
        let g = play(&liar, k, |points, hi| {
            honest_choice(points, hi, &truth).unwrap()
        });
        assert_eq!(
            g.outcome(),
            Some(Outcome::StepVerified {
                winner: Side::Challenger,
                step: 377
            }),
            "k = {k}"
        );
        assert!(
            g.rounds() <= rounds_needed(1_000, k),
            "k = {k}: {}",
            g.rounds()
        );
    }
}

#[test]
fn a_griefing_challenger_loses_against_a_correct_root() {
    let truth = honest_trace(500);
    for part in [0usize, 1, 3] {
        let g = play(&truth, 4, |points, _| part.min(points.len()));
        assert_eq!(g.outcome().map(Outcome::winner), Some(Side::Proposer));
    }
}

#[test]
fn roots_outside_the_commitment_are_refused_and_change_nothing() {
    let liar = wrong_trace(64, 10);
    let mut g = open(&liar, 2);
    let (lo, hi) = g.range();
    let (root, proof) = liar.prove(boundaries(lo, hi, 2)[0]).unwrap();
    // another root at the same position
    let forged = keccak256(root);
    assert_eq!(
        g.split(10, &[(forged, proof.clone())]),
        Err(DisputeError::NotInTrace { position: 32 })
    );
    // a proof of another position
    let (other, other_proof) = liar.prove(31).unwrap();
    assert!(g.split(10, &[(other, other_proof)]).is_err());
    // the wrong number of roots
    assert!(matches!(
        g.split(10, &[]),
        Err(DisputeError::WrongSplit { expected: 1, .. })
    ));
    assert_eq!(g.phase(), &Phase::Split);
    assert_eq!(g.clock(Side::Proposer, 0), CLOCK);
    // out of turn
    assert!(matches!(
        g.choose(10, 0),
        Err(DisputeError::OutOfTurn { .. })
    ));
    g.split(20, &[(root, proof)]).unwrap();
    assert!(g.split(30, &[]).is_err(), "the challenger moves next");
    assert_eq!(
        g.choose(30, 2),
        Err(DisputeError::NoSuchPart { part: 2, parts: 2 })
    );
    // opening with a pre-state the commitment does not hold fails
    let (end, end_proof) = liar.prove(64).unwrap();
    let (_, pre_proof) = liar.prove(0).unwrap();
    assert!(DisputeGame::open(
        GameConfig {
            k: 2,
            clock_ms: CLOCK
        },
        liar.commitment(),
        64,
        (B256::repeat_byte(1), &pre_proof),
        (end, &end_proof),
        0,
    )
    .is_err());
}

#[test]
fn a_stalling_side_loses_on_its_clock_and_only_its_own_time_runs() {
    let liar = wrong_trace(100, 50);
    let mut g = open(&liar, 2);
    // the proposer thinks for 4 s, then splits
    let (lo, hi) = g.range();
    let roots: Vec<_> = boundaries(lo, hi, 2)
        .iter()
        .map(|p| liar.prove(*p).unwrap())
        .collect();
    g.split(4_000, &roots).unwrap();
    assert_eq!(g.clock(Side::Proposer, 100_000), CLOCK - 4_000);
    // the challenger stalls past its 10 s
    assert_eq!(g.tick(13_999), None);
    assert_eq!(
        g.tick(14_000),
        Some(Outcome::ClockExpired {
            winner: Side::Proposer
        })
    );
    assert_eq!(g.choose(14_001, 0), Err(DisputeError::Over));

    // and the other way round: a proposer that never splits
    let mut g = open(&liar, 2);
    assert_eq!(g.tick(CLOCK).map(Outcome::winner), Some(Side::Challenger));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Against any wrong root the honest challenger wins, at the first wrong step, within
    /// ceil(log_k n) rounds; against the correct root every challenger strategy loses.
    #[test]
    fn the_honest_side_always_wins(
        n in 1u64..600,
        k in 2u64..17,
        wrong_from in any::<prop::sample::Index>(),
        choices in prop::collection::vec(any::<prop::sample::Index>(), 64),
    ) {
        let truth = honest_trace(n);
        let from = 1 + wrong_from.index(n as usize) as u64;
        let liar = wrong_trace(n, from);
        let g = play(&liar, k, |points, hi| honest_choice(points, hi, &truth).unwrap());
        prop_assert_eq!(
            g.outcome(),
            Some(Outcome::StepVerified { winner: Side::Challenger, step: from })
        );
        prop_assert!(g.rounds() <= rounds_needed(n, k));

        let mut i = 0;
        let g = play(&truth, k, |points, _| {
            i += 1;
            choices[i % choices.len()].index(points.len() + 1)
        });
        prop_assert_eq!(g.outcome().map(Outcome::winner), Some(Side::Proposer));
    }
}

/// The rounds table in docs/benchmarks.md.
#[test]
fn rounds_table() {
    let table = [
        (2, [10, 14, 17, 20]),
        (4, [5, 7, 9, 10]),
        (16, [3, 4, 5, 5]),
    ];
    for (k, rounds) in table {
        for (e, r) in rounds.iter().enumerate() {
            let n = 10u64.pow(e as u32 + 3);
            assert_eq!(rounds_needed(n, k), *r, "k = {k}, n = {n}");
        }
    }
}
