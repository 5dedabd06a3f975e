//! The dispute core of optimistic settlement (seed 004): trace commitments and the k-section game
//! under chess clocks, as a sans-IO state machine (moves and time in, outcome out).
//!
//! # Trace commitment
//! A proposer claims that applying a batch's transactions `1..=n` to the agreed pre-state root
//! `s_0` gives `s_n`. It commits to the whole trace `s_0, s_1, ..., s_n` (the state root after
//! each step; a step is one transaction) with a Merkle root over the leaves
//! `keccak256(abi.encode(uint64 i, bytes32 s_i))`, built with [`braid_merkle::MessageTree`] (its
//! size is mixed into the root, so the trace length is committed too). [`Trace`] builds one and
//! proves positions in it.
//!
//! # The k-section game
//! A challenger who disagrees with `s_n` opens a game on the range `[0, n]`: both sides agree on
//! the root at the low end and disagree on the root at the high end. Each round:
//! 1. the proposer **splits** the range `[lo, hi]` into (up to) `k` parts by posting the roots of
//!    its trace at the `k - 1` inner boundaries ([`boundaries`]), each with an inclusion proof
//!    against its trace commitment — a root that does not match the commitment is refused;
//! 2. the challenger **chooses** the first part whose end root it disputes; that part is the new
//!    range (its low end is agreed: the challenger accepted it by not choosing an earlier part).
//!
//! After `ceil(log_k n)` rounds ([`rounds_needed`]) one step remains: `[s - 1, s]`. The SL then
//! re-executes step `s` alone from the agreed root `s_{s-1}` (the single-step verifier, outside
//! this crate) and [`DisputeGame::resolve_step`] rules: if the re-executed root equals the
//! proposer's `s_s`, the challenger loses, else the proposer does.
//!
//! # Chess clocks
//! Each side has `clock_ms` of thinking time for the whole game. Only the side to move is
//! charged, from the moment the turn passed to it; a side whose clock runs out loses
//! ([`DisputeGame::tick`]). A stalling party therefore cannot hold the game open for longer than
//! its own clock. In the single-step phase the challenger is the side to move: it claims the
//! step is wrong, so it must bring the step's witness to the verifier before its clock runs out
//! (the proposer may bring it too, to end the game early).
//!
//! # Sizing the clocks
//! The number of moves grows with the trace: the challenger makes one choice per round and brings
//! the witness ([`moves_needed`] = `ceil(log_k n) + 1`), the proposer one split per round. A move
//! lands at the earliest one block of the chain the game runs on after the turn passed, so a
//! fixed clock is outgrown by a long enough trace and the honest side would lose on time. The
//! clock of a game is therefore sized from its trace ([`game_clock_ms`]): a reserve plus a
//! per-move allowance for every move a side may have to make. A side whose every move lands
//! within the allowance ends the game with at least its reserve left, whatever `n` and `k`.

use alloy_primitives::{keccak256, B256};
use alloy_sol_types::SolValue;
use braid_merkle::{verify_inclusion, InclusionProof, MessageTree};
use serde::{Deserialize, Serialize};

/// Errors of the dispute core: moves refused (they change nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisputeError {
    /// Unusable parameters.
    #[error("invalid game: {0}")]
    InvalidGame(String),
    /// The game is over.
    #[error("the game is over")]
    Over,
    /// Not this side's turn, or not this kind of move now.
    #[error("{side:?} may not {action} now")]
    OutOfTurn {
        /// Who tried.
        side: Side,
        /// What.
        action: &'static str,
    },
    /// A split with the wrong number of roots.
    #[error("the split of [{lo}, {hi}] needs {expected} roots, got {got}")]
    WrongSplit {
        /// Range start.
        lo: u64,
        /// Range end.
        hi: u64,
        /// Roots needed.
        expected: usize,
        /// Roots given.
        got: usize,
    },
    /// A posted root that the proposer's trace commitment does not hold at that position.
    #[error("root at position {position} does not match the trace commitment")]
    NotInTrace {
        /// The position.
        position: u64,
    },
    /// A choice of a part that does not exist.
    #[error("part {part} of {parts}")]
    NoSuchPart {
        /// The choice.
        part: usize,
        /// Parts available.
        parts: usize,
    },
    /// The trace is empty or too long for the commitment.
    #[error("trace error: {0}")]
    Trace(String),
}

/// A side of the game.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Side {
    /// The party defending the proposed root.
    Proposer,
    /// The party disputing it.
    Challenger,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Proposer => 0,
            Side::Challenger => 1,
        }
    }
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Proposer => Side::Challenger,
            Side::Challenger => Side::Proposer,
        }
    }
}

/// How a game ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The single step was re-executed: the winner is whoever it agrees with.
    StepVerified {
        /// The winner.
        winner: Side,
        /// The step.
        step: u64,
    },
    /// The side to move ran out of time.
    ClockExpired {
        /// The winner (the other side).
        winner: Side,
    },
}

impl Outcome {
    /// The winning side.
    pub fn winner(self) -> Side {
        match self {
            Outcome::StepVerified { winner, .. } | Outcome::ClockExpired { winner } => winner,
        }
    }
}

/// The leaf of position `i` holding root `root`.
pub fn trace_leaf(i: u64, root: B256) -> B256 {
    keccak256((i, root).abi_encode())
}

/// A trace `s_0..=s_n` and its commitment.
#[derive(Debug, Clone)]
pub struct Trace {
    roots: Vec<B256>,
    tree: MessageTree,
}

impl Trace {
    /// Commits to `roots` (`s_0` first). Needs at least one root; a trace of one root (no step)
    /// can be committed to but not disputed.
    pub fn new(roots: Vec<B256>) -> Result<Self, DisputeError> {
        if roots.is_empty() {
            return Err(DisputeError::Trace(
                "a trace needs at least its start".into(),
            ));
        }
        let tree = MessageTree::from_leaves(
            roots
                .iter()
                .enumerate()
                .map(|(i, r)| trace_leaf(i as u64, *r)),
        )
        .map_err(|e| DisputeError::Trace(e.to_string()))?;
        Ok(Self { roots, tree })
    }
    /// The commitment.
    pub fn commitment(&self) -> B256 {
        self.tree.root()
    }
    /// Number of steps (`n`).
    pub fn steps(&self) -> u64 {
        self.roots.len() as u64 - 1
    }
    /// Root at position `i`.
    pub fn root(&self, i: u64) -> Option<B256> {
        self.roots.get(usize::try_from(i).ok()?).copied()
    }
    /// The root at `i` with its proof against the commitment.
    pub fn prove(&self, i: u64) -> Option<(B256, InclusionProof)> {
        let proof = self.tree.inclusion_proof(i, self.tree.len()).ok()?;
        Some((self.root(i)?, proof))
    }
}

/// The inner boundaries splitting `[lo, hi]` into up to `k` parts of (nearly) equal length:
/// `lo + ceil(j * (hi - lo) / k)` for `j = 1..k`, without duplicates or ends.
pub fn boundaries(lo: u64, hi: u64, k: u64) -> Vec<u64> {
    let len = hi.saturating_sub(lo);
    let mut out: Vec<u64> = (1..k)
        .map(|j| lo + (u128::from(j) * u128::from(len)).div_ceil(u128::from(k)) as u64)
        .filter(|p| *p > lo && *p < hi)
        .collect();
    out.dedup();
    out
}

/// Rounds the game takes for a trace of `steps` steps: `ceil(log_k steps)`.
pub fn rounds_needed(steps: u64, k: u64) -> u32 {
    // the first part of a split is the longest (boundaries round up): follow it
    let (mut len, mut rounds) = (steps, 0u32);
    while len > 1 {
        len = boundaries(0, len, k).first().copied().unwrap_or(1);
        rounds += 1;
    }
    rounds
}

/// Most moves one side makes in a game on a trace of `steps` steps: the challenger chooses once
/// per round and then brings the single step's witness, `ceil(log_k steps) + 1`
/// ([`rounds_needed`] follows the longest parts, so no sequence of choices plays more rounds);
/// the proposer splits once per round, one move fewer.
pub fn moves_needed(steps: u64, k: u64) -> u32 {
    rounds_needed(steps, k).saturating_add(1)
}

/// Each side's clock for a game on a trace of `steps` steps with `k` parts per split:
/// `reserve_ms + moves_needed(steps, k) * move_ms` (saturating). A side that makes each of its
/// moves within `move_ms` of the turn passing to it never has less than `reserve_ms` left, so
/// with a positive reserve it cannot lose on time, however long the trace.
pub fn game_clock_ms(steps: u64, k: u64, reserve_ms: u64, move_ms: u64) -> u64 {
    reserve_ms.saturating_add(u64::from(moves_needed(steps, k)).saturating_mul(move_ms))
}

/// Game parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameConfig {
    /// Parts per split (at least 2).
    pub k: u64,
    /// Each side's total thinking time (size it with [`game_clock_ms`]).
    pub clock_ms: u64,
}

/// What the game waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// The proposer must split `[lo, hi]`.
    Split,
    /// The challenger must choose among the parts delimited by these boundaries (with the
    /// proposer's roots there).
    Choose(Vec<(u64, B256)>),
    /// One step is left: `(step, agreed pre-root, proposer's post-root)` for the verifier.
    SingleStep {
        /// The step (position of its post-state).
        step: u64,
        /// The agreed root before it.
        pre: B256,
        /// The proposer's root after it.
        claimed: B256,
    },
    /// Over.
    Over(Outcome),
}

/// One k-section game between a proposer and a challenger.
#[derive(Debug, Clone)]
pub struct DisputeGame {
    config: GameConfig,
    commitment: B256,
    trace_size: u64,
    lo: (u64, B256),
    hi: (u64, B256),
    phase: Phase,
    /// Remaining time per side.
    clocks: [u64; 2],
    /// When the side to move got the turn.
    turn_since_ms: u64,
    rounds: u32,
}

impl DisputeGame {
    /// Opens a game on the proposer's claim that `trace_steps` steps take `pre_root` (position
    /// 0) to `claimed_root` (position `trace_steps`), both shown against `commitment`.
    pub fn open(
        config: GameConfig,
        commitment: B256,
        trace_steps: u64,
        pre: (B256, &InclusionProof),
        claimed: (B256, &InclusionProof),
        now_ms: u64,
    ) -> Result<Self, DisputeError> {
        if config.k < 2 {
            return Err(DisputeError::InvalidGame("k must be at least 2".into()));
        }
        if trace_steps == 0 {
            return Err(DisputeError::InvalidGame("no step to dispute".into()));
        }
        let size = trace_steps + 1;
        check_position(commitment, size, 0, pre.0, pre.1)?;
        check_position(commitment, size, trace_steps, claimed.0, claimed.1)?;
        let mut game = Self {
            config,
            commitment,
            trace_size: size,
            lo: (0, pre.0),
            hi: (trace_steps, claimed.0),
            phase: Phase::Split,
            clocks: [config.clock_ms; 2],
            turn_since_ms: now_ms,
            rounds: 0,
        };
        game.settle_phase();
        Ok(game)
    }

    /// What the game waits for.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }
    /// The disputed range `[lo, hi]`.
    pub fn range(&self) -> (u64, u64) {
        (self.lo.0, self.hi.0)
    }
    /// Rounds played (splits answered by a choice).
    pub fn rounds(&self) -> u32 {
        self.rounds
    }
    /// The side to move, if any.
    pub fn to_move(&self) -> Option<Side> {
        match self.phase {
            Phase::Split => Some(Side::Proposer),
            // the challenger must bring the single step's witness (the proposer may too)
            Phase::Choose(_) | Phase::SingleStep { .. } => Some(Side::Challenger),
            Phase::Over(_) => None,
        }
    }
    /// Remaining thinking time of `side` at `now_ms`.
    pub fn clock(&self, side: Side, now_ms: u64) -> u64 {
        let left = self.clocks[side.index()];
        if self.to_move() == Some(side) {
            left.saturating_sub(now_ms.saturating_sub(self.turn_since_ms))
        } else {
            left
        }
    }
    /// The outcome, once over.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.phase {
            Phase::Over(o) => Some(o),
            _ => None,
        }
    }

    /// Time passed: the side to move loses if its clock ran out.
    pub fn tick(&mut self, now_ms: u64) -> Option<Outcome> {
        if let Some(side) = self.to_move() {
            if self.clock(side, now_ms) == 0 {
                let o = Outcome::ClockExpired {
                    winner: side.other(),
                };
                self.phase = Phase::Over(o);
            }
        }
        self.outcome()
    }

    fn charge(&mut self, side: Side, now_ms: u64) -> Result<(), DisputeError> {
        if self.tick(now_ms).is_some() {
            return Err(DisputeError::Over);
        }
        self.clocks[side.index()] = self.clock(side, now_ms);
        self.turn_since_ms = now_ms;
        Ok(())
    }

    /// The proposer posts the roots at [`boundaries`] of the range, each proven against its
    /// trace commitment.
    pub fn split(
        &mut self,
        now_ms: u64,
        roots: &[(B256, InclusionProof)],
    ) -> Result<(), DisputeError> {
        self.expect(Side::Proposer, "split", matches!(self.phase, Phase::Split))?;
        if self.tick(now_ms).is_some() {
            return Err(DisputeError::Over);
        }
        let positions = boundaries(self.lo.0, self.hi.0, self.config.k);
        if roots.len() != positions.len() {
            return Err(DisputeError::WrongSplit {
                lo: self.lo.0,
                hi: self.hi.0,
                expected: positions.len(),
                got: roots.len(),
            });
        }
        for (p, (root, proof)) in positions.iter().zip(roots) {
            check_position(self.commitment, self.trace_size, *p, *root, proof)?;
        }
        self.charge(Side::Proposer, now_ms)?;
        self.phase = Phase::Choose(
            positions
                .into_iter()
                .zip(roots.iter().map(|(r, _)| *r))
                .collect(),
        );
        Ok(())
    }

    /// The challenger picks part `part` (0-based) of the last split: the first whose end root
    /// it disputes.
    pub fn choose(&mut self, now_ms: u64, part: usize) -> Result<(), DisputeError> {
        if self.tick(now_ms).is_some() {
            return Err(DisputeError::Over);
        }
        let Phase::Choose(points) = &self.phase else {
            return Err(DisputeError::OutOfTurn {
                side: Side::Challenger,
                action: "choose",
            });
        };
        let parts = points.len() + 1;
        if part >= parts {
            return Err(DisputeError::NoSuchPart { part, parts });
        }
        let start = if part == 0 { self.lo } else { points[part - 1] };
        let end = if part == parts - 1 {
            self.hi
        } else {
            points[part]
        };
        self.charge(Side::Challenger, now_ms)?;
        self.lo = start;
        self.hi = end;
        self.rounds += 1;
        self.phase = Phase::Split;
        self.settle_phase();
        Ok(())
    }

    /// The single-step verifier re-executed the last step from the agreed root and got
    /// `computed`: the proposer wins iff it equals the proposer's root.
    pub fn resolve_step(&mut self, computed: B256) -> Result<Outcome, DisputeError> {
        let Phase::SingleStep { step, claimed, .. } = self.phase else {
            return Err(DisputeError::OutOfTurn {
                side: Side::Proposer,
                action: "resolve the step",
            });
        };
        let winner = if computed == claimed {
            Side::Proposer
        } else {
            Side::Challenger
        };
        let o = Outcome::StepVerified { winner, step };
        self.phase = Phase::Over(o);
        Ok(o)
    }

    fn expect(&self, side: Side, action: &'static str, ok: bool) -> Result<(), DisputeError> {
        if matches!(self.phase, Phase::Over(_)) {
            return Err(DisputeError::Over);
        }
        if ok {
            Ok(())
        } else {
            Err(DisputeError::OutOfTurn { side, action })
        }
    }

    fn settle_phase(&mut self) {
        if self.hi.0 - self.lo.0 == 1 {
            self.phase = Phase::SingleStep {
                step: self.hi.0,
                pre: self.lo.1,
                claimed: self.hi.1,
            };
        }
    }
}

fn check_position(
    commitment: B256,
    size: u64,
    position: u64,
    root: B256,
    proof: &InclusionProof,
) -> Result<(), DisputeError> {
    if proof.index != position || proof.size != size {
        return Err(DisputeError::NotInTrace { position });
    }
    verify_inclusion(commitment, trace_leaf(position, root), proof)
        .map_err(|_| DisputeError::NotInTrace { position })
}

/// The honest challenger's choice: the first part whose end root differs from `truth`.
pub fn honest_choice(points: &[(u64, B256)], hi: u64, truth: &Trace) -> Option<usize> {
    points
        .iter()
        .position(|(p, r)| truth.root(*p) != Some(*r))
        .or_else(|| truth.root(hi).map(|_| points.len()))
}

#[cfg(test)]
mod tests;
