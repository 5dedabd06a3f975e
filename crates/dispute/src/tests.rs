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

/// Who lies in a timed game.
#[derive(Debug, Clone, Copy)]
enum Liar {
    /// The proposer claims a wrong root from `from` on; the challenger is honest.
    Proposer { from: u64 },
    /// The proposer is right; the challenger disputes it anyway, choosing `choices`.
    Challenger,
}

/// Plays a game in time on a chain with `block_ms` blocks: every move lands on a block, the
/// clocks are checked at every block in between (as the SL does after a block's moves). The
/// honest side moves `honest[i]` blocks after the turn passed to it; the liar `liar[i]` blocks
/// (possibly longer than its clock). Returns the outcome.
#[allow(clippy::too_many_arguments)]
fn play_timed(
    n: u64,
    k: u64,
    clock_ms: u64,
    block_ms: u64,
    who: Liar,
    honest: &[u64],
    liar: &[u64],
    choices: &[prop::sample::Index],
) -> Outcome {
    let truth = honest_trace(n);
    let (proposer, honest_side) = match who {
        Liar::Proposer { from } => (wrong_trace(n, from), Side::Challenger),
        Liar::Challenger => (honest_trace(n), Side::Proposer),
    };
    let (pre, pre_proof) = proposer.prove(0).unwrap();
    let (end, end_proof) = proposer.prove(n).unwrap();
    let mut g = DisputeGame::open(
        GameConfig { k, clock_ms },
        proposer.commitment(),
        n,
        (pre, &pre_proof),
        (end, &end_proof),
        0,
    )
    .unwrap();
    let (mut now, mut moves) = (0u64, 0usize);
    loop {
        // at the single step the honest side brings the witness (either side may)
        let side = match g.phase() {
            Phase::SingleStep { .. } => honest_side,
            _ => g.to_move().unwrap(),
        };
        let delays = if side == honest_side { honest } else { liar };
        let wait = delays[moves % delays.len()];
        moves += 1;
        // the blocks before the move: the clock of the side to move runs
        for _ in 1..wait {
            now += block_ms;
            if let Some(o) = g.tick(now) {
                return o;
            }
        }
        now += block_ms;
        match g.phase().clone() {
            Phase::Split => {
                let (lo, hi) = g.range();
                let roots: Vec<_> = boundaries(lo, hi, k)
                    .iter()
                    .map(|p| proposer.prove(*p).unwrap())
                    .collect();
                if g.split(now, &roots).is_err() {
                    return g.tick(now).unwrap();
                }
            }
            Phase::Choose(points) => {
                let (_, hi) = g.range();
                let part = match who {
                    Liar::Proposer { .. } => honest_choice(&points, hi, &truth).unwrap(),
                    Liar::Challenger => choices[moves % choices.len()].index(points.len() + 1),
                };
                if g.choose(now, part).is_err() {
                    return g.tick(now).unwrap();
                }
            }
            Phase::SingleStep { step: s, pre, .. } => {
                // the SL refuses the witness once the clock of the side to move ran out
                if let Some(o) = g.tick(now) {
                    return o;
                }
                return g.resolve_step(step(pre, s)).unwrap();
            }
            Phase::Over(o) => return o,
        }
    }
}

#[test]
fn a_fixed_clock_is_outgrown_by_the_step_count_and_a_sized_one_is_not() {
    // the reproduction opt_clock_steps: k = 4, 1 s blocks, 4.5 s clocks, a 174-step batch needs
    // 4 rounds; the honest challenger makes 4 choices and brings the witness, one block each
    let (n, k, block) = (174, 4, 1_000);
    assert_eq!(rounds_needed(n, k), 4);
    assert_eq!(moves_needed(n, k), 5);
    let liar = Liar::Proposer { from: 100 };
    let fixed = play_timed(n, k, 4_500, block, liar, &[1], &[1], &[]);
    assert_eq!(
        fixed,
        Outcome::ClockExpired {
            winner: Side::Proposer
        },
        "5 moves of 1 s do not fit in 4.5 s"
    );
    let sized = game_clock_ms(n, k, 4_500, block);
    assert_eq!(sized, 9_500);
    let o = play_timed(n, k, sized, block, liar, &[1], &[1], &[]);
    assert_eq!(
        o,
        Outcome::StepVerified {
            winner: Side::Challenger,
            step: 100
        }
    );
    assert_eq!(
        game_clock_ms(u64::MAX, 2, u64::MAX, 1),
        u64::MAX,
        "saturates"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// With clocks sized by `game_clock_ms`, the honest side wins every game — against a liar
    /// or a griefer, whatever the step count, k, block time and per-move allowance — as long as
    /// each of its moves lands within the allowance; the dishonest side's timing (up to running
    /// out of time) does not matter.
    #[test]
    fn with_sized_clocks_the_honest_side_wins_whatever_the_step_count(
        n in 1u64..3_000,
        k in 2u64..17,
        block_ms in 1u64..5_000,
        blocks_per_move in 1u64..4,
        reserve_ms in 1u64..10_000,
        wrong_from in any::<prop::sample::Index>(),
        honest in prop::collection::vec(any::<prop::sample::Index>(), 1..16),
        liar in prop::collection::vec(1u64..40, 1..16),
        choices in prop::collection::vec(any::<prop::sample::Index>(), 1..16),
        liar_proposes in any::<bool>(),
    ) {
        let move_ms = block_ms * blocks_per_move;
        let clock = game_clock_ms(n, k, reserve_ms, move_ms);
        // the honest side answers within the allowance: 1..=blocks_per_move blocks
        let honest: Vec<u64> = honest
            .iter()
            .map(|i| 1 + i.index(blocks_per_move as usize) as u64)
            .collect();
        let who = if liar_proposes {
            Liar::Proposer { from: 1 + wrong_from.index(n as usize) as u64 }
        } else {
            Liar::Challenger
        };
        let o = play_timed(n, k, clock, block_ms, who, &honest, &liar, &choices);
        let honest_side = if liar_proposes { Side::Challenger } else { Side::Proposer };
        prop_assert_eq!(o.winner(), honest_side, "{:?} n={} k={} clock={}", o, n, k, clock);
    }
}
