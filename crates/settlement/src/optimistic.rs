//! Optimistic settlement on the SL (seed 004): bonded proposals, challenges, k-section games and
//! the single-step verifier.
//!
//! A chain listed in [`OptimisticConfig::chains`] is not proven with `proveBatch`. Instead:
//! - **Proposals.** Anyone bonded (`proposal_bond`, taken from the SL balance) proposes, for a
//!   committed batch, the machine state after it ([`MachineState`]) and a trace commitment
//!   ([`braid_dispute::Trace`]) over the machine-state commitments after each of the batch's
//!   steps ([`braid_execution::batch_steps`]). The proposal proves positions `0` and `n` of
//!   its trace; position 0 must be the batch's agreed start (the previous batch's state root), and
//!   a running end state brings SMT proofs of the outgoing-tree and value-totals items, from which
//!   the SL takes the batch's outputs. Several proposals for one batch may compete.
//! - **Challenges.** Within `challenge_window_ms` anyone bonded (`challenge_bond`) may challenge a
//!   proposal: a [`DisputeGame`] on its trace starts. The proposer splits, the challenger
//!   chooses, each under a chess clock sized for the game (see *Clock rule* below); when one
//!   step is left, anyone may bring the pre-state and a [`StepWitness`]: the SL re-executes the
//!   step ([`verify_step`]) and the game ends. A side whose clock runs out loses.
//! - **Bonds.** The loser's bond is taken: `winner_share_percent` goes to the winner, the rest is
//!   burned. A proposer that loses is defeated: its proposal is removed and its other games end
//!   with the challengers' bonds returned. The batch can be proposed again. A proposal's bond is
//!   only ever returned once it can no longer lose a game (see *Finality*): settling its batch
//!   with another proposal does not end its games.
//! - **Finality.** A proposal unchallenged (or with every challenge won) `challenge_window_ms`
//!   after it was posted is final: its bond is returned and the first final proposal settles the
//!   batch, in batch order: if its end state matches the batch record, the batch is proven with
//!   the proposal's outputs; if it does not (or the batch's execution fails), the batch fails its
//!   checks and must be reverted. The other proposals of a settled batch stay open to challenges
//!   until their own window ends and their games are played out: a lying one still loses its
//!   bond to the game; one that survives its window and games is closed (not final — its batch
//!   is settled already) with its bond returned.
//! - **Reverts** close every proposal and game of the reverted batches, bonds returned.
//!
//! # Clock rule
//! The number of moves of a game grows with the batch's step count `n`: `ceil(log_k n)` rounds
//! (a split and a choice each), then the challenger brings the single step's witness, and every
//! move lands one SL block after the turn passed at the earliest. A fixed clock is therefore
//! outgrown by a large enough batch — and the batch size is up to the sequencer — after which an
//! honest challenger loses on time and a wrong root becomes final. So the SL sizes each game's
//! clocks when the challenge opens, from the proposal's (checked) step count
//! ([`OptimisticConfig::game_clock_ms`], [`braid_dispute::game_clock_ms`]):
//!
//! `clock(n) = clock_ms + (ceil(log_k n) + 1) × move_ms`
//!
//! where `clock_ms` is a reserve and `move_ms` the allowance per move (default and minimum: one
//! SL block). A side whose every move lands within `move_ms` of its turn keeps at least the
//! reserve and cannot lose on time, for any `n`, `k` and SL block time; an operator whose
//! parties need longer per move (network latency, signing, several blocks to get included)
//! raises `move_ms`. A configuration with `move_ms` below the SL block time is refused
//! ([`ClockRuleError`]): no move can land that fast. The price is liveness, not safety: a
//! stalling side can hold a game open for at most its own `clock(n)`, which grows with `log n`.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256};
use braid_dispute::{DisputeGame, GameConfig, Outcome, Phase, Side};
use braid_execution::{MachineState, StateKey, StateValue, StepWitness, ValueTotals};
use braid_merkle::InclusionProof;
use braid_primitives::{BatchNumber, ChainId};
use braid_proof::BatchOutputs;
use braid_state::SmtProof;
use serde::{Deserialize, Serialize};

use crate::{Authority, BatchStatus, SettlementError, SettlementLayer, SlEvent};

/// Parameters of optimistic settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimisticConfig {
    /// Chains settled by proposals instead of proofs.
    #[serde(default)]
    pub chains: Vec<ChainId>,
    /// A proposal is final this long after it was posted, unless a challenge against it is open
    /// or was lost.
    #[serde(default = "default_window")]
    pub challenge_window_ms: u64,
    /// Bond of a proposal.
    #[serde(default = "default_bond")]
    pub proposal_bond: U256,
    /// Bond of a challenge.
    #[serde(default = "default_bond")]
    pub challenge_bond: U256,
    /// Parts per split of the k-section game.
    #[serde(default = "default_k")]
    pub k: u64,
    /// Each side's reserve on its chess clock: a game on `n` steps gives each side
    /// `clock_ms + moves_needed(n, k) × move_ms` ([`OptimisticConfig::game_clock_ms`]).
    #[serde(default = "default_clock")]
    pub clock_ms: u64,
    /// Time allowed per move on top of the reserve; `None`: one SL block (the least a move
    /// takes). Must not be below the SL block time.
    #[serde(default)]
    pub move_ms: Option<u64>,
    /// Share of the loser's bond paid to the winner (percent); the rest is burned.
    #[serde(default = "default_share")]
    pub winner_share_percent: u8,
}

fn default_window() -> u64 {
    20_000
}
fn default_bond() -> U256 {
    U256::from(10u64).pow(U256::from(18u64))
}
fn default_k() -> u64 {
    4
}
fn default_clock() -> u64 {
    5_000
}
fn default_share() -> u8 {
    50
}

impl Default for OptimisticConfig {
    fn default() -> Self {
        Self {
            chains: Vec::new(),
            challenge_window_ms: default_window(),
            proposal_bond: default_bond(),
            challenge_bond: default_bond(),
            k: default_k(),
            clock_ms: default_clock(),
            move_ms: None,
            winner_share_percent: default_share(),
        }
    }
}

impl OptimisticConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), String> {
        if !self.chains.is_empty() {
            if self.k < 2 {
                return Err("optimistic.k must be at least 2".into());
            }
            if self.clock_ms == 0 || self.challenge_window_ms == 0 {
                return Err("optimistic.clock_ms and challenge_window_ms must be positive".into());
            }
            if self.winner_share_percent > 100 {
                return Err("optimistic.winner_share_percent is a percentage".into());
            }
        }
        Ok(())
    }

    /// Whether `chain` settles optimistically.
    pub fn covers(&self, chain: ChainId) -> bool {
        self.chains.contains(&chain)
    }

    /// The allowance per move with SL blocks of `sl_block_time_ms`.
    pub fn move_ms(&self, sl_block_time_ms: u64) -> u64 {
        self.move_ms.unwrap_or(sl_block_time_ms)
    }

    /// The clock rule: refuses an allowance per move below one SL block (the honest side of a
    /// long enough game would lose on time).
    pub fn check_clock(&self, sl_block_time_ms: u64) -> Result<(), ClockRuleError> {
        let move_ms = self.move_ms(sl_block_time_ms);
        if move_ms < sl_block_time_ms {
            return Err(ClockRuleError::MoveShorterThanBlock {
                move_ms,
                sl_block_time_ms,
            });
        }
        Ok(())
    }

    /// Each side's clock in a game on a proposal of `steps` steps, with SL blocks of
    /// `sl_block_time_ms`: `clock_ms + (ceil(log_k steps) + 1) × move_ms` (saturating).
    pub fn game_clock_ms(&self, steps: u64, sl_block_time_ms: u64) -> u64 {
        braid_dispute::game_clock_ms(steps, self.k, self.clock_ms, self.move_ms(sl_block_time_ms))
    }
}

/// A configuration under which an honest party could lose a dispute game on time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockRuleError {
    /// The allowance per move is shorter than an SL block.
    #[error(
        "optimistic.move_ms ({move_ms} ms) is shorter than an SL block ({sl_block_time_ms} ms): \
         a move lands one SL block after its turn at the earliest, so an honest party would \
         run out of time in a game with enough steps"
    )]
    MoveShorterThanBlock {
        /// The allowance per move.
        move_ms: u64,
        /// The SL block time.
        sl_block_time_ms: u64,
    },
}

/// Id of a proposal.
pub type ProposalId = u64;
/// Id of a game.
pub type GameId = u64;

/// The outputs a proposal claims for a running end state, each with an SMT proof against the
/// claimed state root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedOutputs {
    /// The outgoing message tree's root after the batch (the ChainBatchRoot).
    pub outbox_root: B256,
    /// Its size.
    pub message_count: u64,
    /// Proof of the `Outbox` item.
    pub outbox_proof: SmtProof,
    /// The value totals after the batch.
    pub totals: ValueTotals,
    /// Proof of the `Totals` item.
    pub totals_proof: SmtProof,
}

/// A proposal as submitted (`propose`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The chain.
    pub chain_id: ChainId,
    /// The batch.
    pub batch: BatchNumber,
    /// Root of the trace commitment (`Trace::commitment`).
    pub trace_root: B256,
    /// Number of steps `n` (the batch's step count).
    pub steps: u64,
    /// Inclusion of the start, position 0.
    pub start_proof: InclusionProof,
    /// The claimed end state (position `n`).
    pub end_state: MachineState,
    /// Inclusion of the end, position `n`.
    pub end_proof: InclusionProof,
    /// The outputs, for a running end state.
    pub outputs: Option<ClaimedOutputs>,
}

/// Where a proposal is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposalStatus {
    /// In its window or disputed.
    Pending,
    /// Lost a game.
    Defeated,
    /// Final.
    Final,
    /// Closed without a ruling (its batch was settled by another proposal or reverted).
    Closed,
}

/// A proposal as the SL holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalRecord {
    /// Its id.
    pub id: ProposalId,
    /// Who proposed.
    pub proposer: Address,
    /// Bond held.
    pub bond: U256,
    /// The proposal.
    pub proposal: Proposal,
    /// The start commitment (position 0).
    pub start: B256,
    /// When posted.
    pub posted_at_ms: u64,
    /// Status.
    pub status: ProposalStatus,
}

impl ProposalRecord {
    /// The claimed end commitment.
    pub fn end(&self) -> B256 {
        self.proposal.end_state.commitment()
    }
}

/// A game as the SL holds it.
#[derive(Debug, Clone)]
pub struct GameRecord {
    /// Its id.
    pub id: GameId,
    /// The challenged proposal.
    pub proposal: ProposalId,
    /// The challenger.
    pub challenger: Address,
    /// Its bond.
    pub bond: U256,
    /// The game.
    pub game: DisputeGame,
    /// When it opened.
    pub opened_at_ms: u64,
}

/// How a game ended, for events and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GameResult {
    /// The game.
    pub game: GameId,
    /// The proposal.
    pub proposal: ProposalId,
    /// The chain and batch.
    pub chain: ChainId,
    /// The batch.
    pub batch: BatchNumber,
    /// The outcome.
    pub outcome: Outcome,
    /// Rounds played.
    pub rounds: u32,
    /// Time from opening to the end.
    pub duration_ms: u64,
    /// Gas-like cost of the single step, when the verifier ruled.
    pub step_gas: Option<u64>,
    /// The loser's bond taken.
    pub slashed: U256,
    /// Of which paid to the winner.
    pub reward: U256,
    /// Address of the winner.
    pub winner: Address,
    /// Address of the loser.
    pub loser: Address,
}

/// Proposals, games and bonds.
#[derive(Debug, Clone, Default)]
pub struct Optimistic {
    /// Every proposal, by id.
    pub proposals: BTreeMap<ProposalId, ProposalRecord>,
    /// Open games, by id.
    pub games: BTreeMap<GameId, GameRecord>,
    /// Bonds held.
    pub bonded: U256,
    /// Bonds burned.
    pub burned: U256,
    next_proposal: ProposalId,
    next_game: GameId,
}

impl Optimistic {
    /// Open proposals for a batch.
    pub fn proposals_for(
        &self,
        chain: ChainId,
        batch: BatchNumber,
    ) -> impl Iterator<Item = &ProposalRecord> + '_ {
        self.proposals.values().filter(move |p| {
            p.proposal.chain_id == chain
                && p.proposal.batch == batch
                && p.status == ProposalStatus::Pending
        })
    }

    /// A proposal.
    pub fn proposal(&self, id: ProposalId) -> Option<&ProposalRecord> {
        self.proposals.get(&id)
    }

    /// An open game.
    pub fn game(&self, id: GameId) -> Option<&GameRecord> {
        self.games.get(&id)
    }

    /// The parameters of a game on a proposal of `steps` steps: clocks sized by the clock rule.
    pub(crate) fn game_config(
        config: &OptimisticConfig,
        steps: u64,
        sl_block_time_ms: u64,
    ) -> GameConfig {
        GameConfig {
            k: config.k,
            clock_ms: config.game_clock_ms(steps, sl_block_time_ms),
        }
    }

    pub(crate) fn insert_proposal(
        &mut self,
        proposer: Address,
        bond: U256,
        proposal: Proposal,
        start: B256,
        now_ms: u64,
    ) -> ProposalId {
        self.next_proposal += 1;
        let id = self.next_proposal;
        self.bonded = self.bonded.saturating_add(bond);
        self.proposals.insert(
            id,
            ProposalRecord {
                id,
                proposer,
                bond,
                proposal,
                start,
                posted_at_ms: now_ms,
                status: ProposalStatus::Pending,
            },
        );
        id
    }

    pub(crate) fn insert_game(
        &mut self,
        proposal: ProposalId,
        challenger: Address,
        bond: U256,
        game: DisputeGame,
        now_ms: u64,
    ) -> GameId {
        self.next_game += 1;
        let id = self.next_game;
        self.bonded = self.bonded.saturating_add(bond);
        self.games.insert(
            id,
            GameRecord {
                id,
                proposal,
                challenger,
                bond,
                game,
                opened_at_ms: now_ms,
            },
        );
        id
    }

    /// Pays a bond back out of the held total; returns (who, amount).
    pub(crate) fn release(&mut self, amount: U256) -> U256 {
        self.bonded = self.bonded.saturating_sub(amount);
        amount
    }
}

/// The SMT key/value checks of claimed outputs against a state root.
pub(crate) fn check_outputs(state_root: B256, out: &ClaimedOutputs) -> Result<(), String> {
    let outbox = StateValue::Outbox {
        root: out.outbox_root,
        count: out.message_count,
    };
    braid_state::verify_proof(
        state_root,
        StateKey::Outbox.smt_key(),
        Some(outbox.smt_value()),
        &out.outbox_proof,
    )
    .map_err(|e| format!("outbox proof: {e}"))?;
    braid_state::verify_proof(
        state_root,
        StateKey::Totals.smt_key(),
        Some(StateValue::Totals(out.totals).smt_value()),
        &out.totals_proof,
    )
    .map_err(|e| format!("totals proof: {e}"))?;
    Ok(())
}

/// Whether a game waits for the single-step verifier.
pub(crate) fn awaiting_step(game: &DisputeGame) -> Option<(u64, B256, B256)> {
    match game.phase() {
        Phase::SingleStep { step, pre, claimed } => Some((*step, *pre, *claimed)),
        _ => None,
    }
}

pub(crate) fn err(call: &'static str, reason: impl Into<String>) -> SettlementError {
    SettlementError::Optimistic {
        call,
        reason: reason.into(),
    }
}

impl SettlementLayer {
    fn take_bond(
        &mut self,
        sender: Address,
        amount: U256,
        call: &'static str,
    ) -> Result<(), SettlementError> {
        let available = self.balance(&sender);
        if available < amount {
            return Err(err(
                call,
                format!("bond {amount} exceeds the sender's SL balance {available}"),
            ));
        }
        self.balances.insert(sender, available - amount);
        Ok(())
    }

    fn pay(&mut self, to: Address, amount: U256) {
        if amount.is_zero() {
            return;
        }
        let b = self.balances.entry(to).or_default();
        *b = b.saturating_add(amount);
    }

    /// `propose`: checks everything, then takes the bond and records the proposal.
    pub(crate) fn propose(
        &mut self,
        sender: Address,
        proposal: &Proposal,
        events: &mut Vec<SlEvent>,
    ) -> Result<(), SettlementError> {
        const CALL: &str = "propose";
        let (chain_id, batch) = (proposal.chain_id, proposal.batch);
        if !self.config.optimistic.covers(chain_id) {
            return Err(err(
                CALL,
                format!("chain {chain_id} is not settled optimistically"),
            ));
        }
        let (chain, rec) = Self::unproven_batch(&self.chains, chain_id, batch)?;
        let steps = braid_execution::batch_steps(&rec.blocks).len() as u64;
        if proposal.steps != steps {
            return Err(err(
                CALL,
                format!(
                    "the batch has {steps} steps, the proposal {}",
                    proposal.steps
                ),
            ));
        }
        let prev = chain
            .tip_before(batch)
            .ok_or(SettlementError::UnknownBatch {
                chain: chain_id,
                batch: batch - 1,
            })?;
        let start = MachineState::Running {
            state_root: prev.state_root,
            block_gas_used: 0,
        }
        .commitment();
        let size = steps + 1;
        let at = |pos: u64, root: B256, proof: &InclusionProof| -> Result<(), SettlementError> {
            if proof.index != pos || proof.size != size {
                return Err(err(
                    CALL,
                    format!("proof of trace position {pos} is for another position"),
                ));
            }
            braid_merkle::verify_inclusion(
                proposal.trace_root,
                braid_dispute::trace_leaf(pos, root),
                proof,
            )
            .map_err(|e| err(CALL, format!("trace position {pos}: {e}")))
        };
        at(0, start, &proposal.start_proof)?;
        let end = proposal.end_state.commitment();
        at(steps, end, &proposal.end_proof)?;
        if steps == 0 && end != start {
            return Err(err(CALL, "a batch without steps ends where it starts"));
        }
        match (&proposal.end_state, &proposal.outputs) {
            (MachineState::Running { state_root, .. }, Some(out)) => {
                check_outputs(*state_root, out).map_err(|r| err(CALL, r))?
            }
            (MachineState::Running { .. }, None) => {
                return Err(err(CALL, "a running end state needs its outputs"))
            }
            (MachineState::Invalid, Some(_)) => {
                return Err(err(CALL, "an invalid end state has no outputs"))
            }
            (MachineState::Invalid, None) => {}
        }
        if self
            .optimistic
            .proposals_for(chain_id, batch)
            .any(|p| p.proposer == sender)
        {
            return Err(err(
                CALL,
                "the sender already has a pending proposal for this batch",
            ));
        }
        let bond = self.config.optimistic.proposal_bond;
        self.take_bond(sender, bond, CALL)?;
        let id =
            self.optimistic
                .insert_proposal(sender, bond, proposal.clone(), start, self.now_ms);
        events.push(SlEvent::ProposalPosted {
            proposal: id,
            chain: chain_id,
            batch,
            proposer: sender,
            end,
            end_state_root: end_summary(&proposal.end_state),
            steps,
        });
        Ok(())
    }

    /// `challenge`: opens a game against a pending proposal in its window.
    pub(crate) fn challenge(
        &mut self,
        sender: Address,
        proposal: ProposalId,
        events: &mut Vec<SlEvent>,
    ) -> Result<(), SettlementError> {
        const CALL: &str = "challenge";
        let p = self
            .optimistic
            .proposal(proposal)
            .ok_or_else(|| err(CALL, format!("no proposal {proposal}")))?;
        if p.status != ProposalStatus::Pending {
            return Err(err(CALL, format!("proposal {proposal} is {:?}", p.status)));
        }
        let window_end = p
            .posted_at_ms
            .saturating_add(self.config.optimistic.challenge_window_ms);
        if self.now_ms >= window_end {
            return Err(err(CALL, "the challenge window is over"));
        }
        if p.proposer == sender {
            return Err(err(CALL, "a proposer cannot challenge itself"));
        }
        if self
            .optimistic
            .games
            .values()
            .any(|g| g.proposal == proposal && g.challenger == sender)
        {
            return Err(err(CALL, "the sender already disputes this proposal"));
        }
        let game = DisputeGame::open(
            Optimistic::game_config(
                &self.config.optimistic,
                p.proposal.steps,
                self.config.sl_block_time_ms,
            ),
            p.proposal.trace_root,
            p.proposal.steps,
            (p.start, &p.proposal.start_proof),
            (p.end(), &p.proposal.end_proof),
            self.now_ms,
        )
        .map_err(|e| err(CALL, e.to_string()))?;
        let (chain, batch) = (p.proposal.chain_id, p.proposal.batch);
        let bond = self.config.optimistic.challenge_bond;
        self.take_bond(sender, bond, CALL)?;
        let range = game.range();
        let id = self
            .optimistic
            .insert_game(proposal, sender, bond, game, self.now_ms);
        events.push(SlEvent::ChallengeOpened {
            game: id,
            proposal,
            chain,
            batch,
            challenger: sender,
            range,
        });
        if let Some(g) = self.optimistic.game(id) {
            events.push(moved(id, &g.game));
        }
        Ok(())
    }

    fn game_parties(&self, game: GameId) -> Result<(Address, Address), SettlementError> {
        let g = self
            .optimistic
            .game(game)
            .ok_or_else(|| err("game", format!("no open game {game}")))?;
        let p = self
            .optimistic
            .proposal(g.proposal)
            .ok_or_else(|| err("game", format!("game {game} lost its proposal")))?;
        Ok((p.proposer, g.challenger))
    }

    /// `split`: the proposer's move.
    pub(crate) fn split(
        &mut self,
        sender: Address,
        game: GameId,
        roots: &[(B256, InclusionProof)],
        events: &mut Vec<SlEvent>,
    ) -> Result<(), SettlementError> {
        let (proposer, _) = self.game_parties(game)?;
        if sender != proposer {
            return Err(err("split", "only the proposer splits"));
        }
        let now = self.now_ms;
        let g = self
            .optimistic
            .games
            .get_mut(&game)
            .ok_or_else(|| err("split", format!("no open game {game}")))?;
        g.game
            .split(now, roots)
            .map_err(|e| err("split", e.to_string()))?;
        events.push(moved(game, &g.game));
        Ok(())
    }

    /// `choose`: the challenger's move.
    pub(crate) fn choose(
        &mut self,
        sender: Address,
        game: GameId,
        part: u32,
        events: &mut Vec<SlEvent>,
    ) -> Result<(), SettlementError> {
        let (_, challenger) = self.game_parties(game)?;
        if sender != challenger {
            return Err(err("choose", "only the challenger chooses"));
        }
        let now = self.now_ms;
        let g = self
            .optimistic
            .games
            .get_mut(&game)
            .ok_or_else(|| err("choose", format!("no open game {game}")))?;
        g.game
            .choose(now, part as usize)
            .map_err(|e| err("choose", e.to_string()))?;
        events.push(moved(game, &g.game));
        Ok(())
    }

    /// `proveStep`: anyone brings the pre-state and witness of the last disputed step; the SL
    /// re-executes it and ends the game.
    pub(crate) fn prove_step(
        &mut self,
        game: GameId,
        pre: &MachineState,
        witness: &StepWitness,
        events: &mut Vec<SlEvent>,
    ) -> Result<(), SettlementError> {
        const CALL: &str = "proveStep";
        let g = self
            .optimistic
            .game(game)
            .ok_or_else(|| err(CALL, format!("no open game {game}")))?;
        let mut probe = g.game.clone();
        if probe.tick(self.now_ms).is_some() {
            return Err(err(CALL, "the game is over (a clock ran out)"));
        }
        let (step, agreed, _) =
            awaiting_step(&g.game).ok_or_else(|| err(CALL, "the game is not at a single step"))?;
        if pre.commitment() != agreed {
            return Err(err(
                CALL,
                "the pre-state is not the agreed root of the step",
            ));
        }
        let p = self
            .optimistic
            .proposal(g.proposal)
            .ok_or_else(|| err(CALL, "the game lost its proposal"))?;
        let rec = self
            .batch(p.proposal.chain_id, p.proposal.batch)
            .ok_or_else(|| err(CALL, "the disputed batch is gone"))?;
        let steps = braid_execution::batch_steps(&rec.blocks);
        let the_step = usize::try_from(step)
            .ok()
            .and_then(|s| s.checked_sub(1))
            .and_then(|i| steps.get(i))
            .ok_or_else(|| err(CALL, format!("the batch has no step {step}")))?;
        if the_step.env.chain_id != p.proposal.chain_id {
            return Err(err(CALL, "the step's block belongs to another chain"));
        }
        let (post, cost) = braid_execution::verify_step(pre, the_step, witness)
            .map_err(|e| err(CALL, format!("witness refused: {e}")))?;
        let g = self
            .optimistic
            .games
            .get_mut(&game)
            .ok_or_else(|| err(CALL, format!("no open game {game}")))?;
        let outcome = g
            .game
            .resolve_step(post.commitment())
            .map_err(|e| err(CALL, e.to_string()))?;
        self.end_game(game, outcome, Some(cost.gas()), events);
        Ok(())
    }

    /// Ends a game: moves the loser's bond, defeats a losing proposer.
    fn end_game(
        &mut self,
        game: GameId,
        outcome: Outcome,
        step_gas: Option<u64>,
        events: &mut Vec<SlEvent>,
    ) {
        let Some(g) = self.optimistic.games.remove(&game) else {
            return;
        };
        let Some(p) = self.optimistic.proposals.get(&g.proposal).cloned() else {
            return;
        };
        let share = self.config.optimistic.winner_share_percent;
        let (winner, loser, slashed) = match outcome.winner() {
            Side::Challenger => (g.challenger, p.proposer, p.bond),
            Side::Proposer => (p.proposer, g.challenger, g.bond),
        };
        let reward = slashed * U256::from(share) / U256::from(100u8);
        let burned = slashed - reward;
        self.optimistic.release(slashed);
        self.optimistic.burned = self.optimistic.burned.saturating_add(burned);
        self.pay(winner, reward);
        match outcome.winner() {
            Side::Challenger => {
                // the challenger's own bond comes back
                let back = self.optimistic.release(g.bond);
                self.pay(g.challenger, back);
                if let Some(rec) = self.optimistic.proposals.get_mut(&g.proposal) {
                    rec.status = ProposalStatus::Defeated;
                }
                events.push(SlEvent::ProposalDefeated {
                    proposal: g.proposal,
                    chain: p.proposal.chain_id,
                    batch: p.proposal.batch,
                });
                // the other games on it end without a ruling
                let others: Vec<GameId> = self
                    .optimistic
                    .games
                    .values()
                    .filter(|o| o.proposal == g.proposal)
                    .map(|o| o.id)
                    .collect();
                for o in others {
                    self.close_game(o);
                }
            }
            Side::Proposer => {}
        }
        events.push(SlEvent::GameResolved(GameResult {
            game,
            proposal: g.proposal,
            chain: p.proposal.chain_id,
            batch: p.proposal.batch,
            outcome,
            rounds: g.game.rounds(),
            duration_ms: self.now_ms.saturating_sub(g.opened_at_ms),
            step_gas,
            slashed,
            reward,
            winner,
            loser,
        }));
    }

    /// Closes a game without a ruling: the challenger's bond comes back.
    fn close_game(&mut self, game: GameId) {
        if let Some(g) = self.optimistic.games.remove(&game) {
            let back = self.optimistic.release(g.bond);
            self.pay(g.challenger, back);
        }
    }

    /// Closes a pending proposal without a ruling: bond back, its games closed.
    fn close_proposal(&mut self, id: ProposalId) {
        let games: Vec<GameId> = self
            .optimistic
            .games
            .values()
            .filter(|g| g.proposal == id)
            .map(|g| g.id)
            .collect();
        for g in games {
            self.close_game(g);
        }
        let Some(p) = self.optimistic.proposals.get_mut(&id) else {
            return;
        };
        if p.status != ProposalStatus::Pending {
            return;
        }
        p.status = ProposalStatus::Closed;
        let (to, bond) = (p.proposer, p.bond);
        let back = self.optimistic.release(bond);
        self.pay(to, back);
    }

    /// Every SL block: clocks, then finality, then settling batches in order.
    pub(crate) fn tick_optimistic(&mut self, events: &mut Vec<SlEvent>) {
        if self.config.optimistic.chains.is_empty() {
            return;
        }
        let now = self.now_ms;
        let expired: Vec<(GameId, Outcome)> = self
            .optimistic
            .games
            .iter_mut()
            .filter_map(|(id, g)| g.game.tick(now).map(|o| (*id, o)))
            .collect();
        for (id, outcome) in expired {
            self.end_game(id, outcome, None, events);
        }
        let window = self.config.optimistic.challenge_window_ms;
        let ripe: Vec<ProposalId> = self
            .optimistic
            .proposals
            .values()
            .filter(|p| {
                p.status == ProposalStatus::Pending
                    && now >= p.posted_at_ms.saturating_add(window)
                    && !self.optimistic.games.values().any(|g| g.proposal == p.id)
            })
            .map(|p| p.id)
            .collect();
        for id in ripe {
            let Some(p) = self.optimistic.proposals.get(&id) else {
                continue;
            };
            // a batch already settled by another final proposal: this one survived its window
            // and games, but has nothing left to settle
            let settled = self
                .batch(p.proposal.chain_id, p.proposal.batch)
                .is_some_and(|b| b.status != BatchStatus::Committed);
            if settled {
                self.close_proposal(id);
                continue;
            }
            let Some(p) = self.optimistic.proposals.get_mut(&id) else {
                continue;
            };
            p.status = ProposalStatus::Final;
            let (to, bond) = (p.proposer, p.bond);
            let (chain, batch) = (p.proposal.chain_id, p.proposal.batch);
            let back = self.optimistic.release(bond);
            self.pay(to, back);
            events.push(SlEvent::ProposalFinalized {
                proposal: id,
                chain,
                batch,
            });
        }
        self.settle_final_proposals(events);
    }

    /// Applies final proposals to their batches, per chain in batch order.
    fn settle_final_proposals(&mut self, events: &mut Vec<SlEvent>) {
        let chains = self.config.optimistic.chains.clone();
        for chain_id in chains {
            while let Some(chain) = self.chains.get(&chain_id) {
                // the first committed (unproven, not failed) batch, if its predecessor is settled
                let Some((n, rec)) = chain
                    .batches
                    .range(chain.last_executed + 1..)
                    .find(|(_, b)| b.status == BatchStatus::Committed)
                else {
                    break;
                };
                let n = *n;
                if rec.failure.is_some() {
                    break;
                }
                let Some(p) = self
                    .optimistic
                    .proposals
                    .values()
                    .find(|p| {
                        p.status == ProposalStatus::Final
                            && p.proposal.chain_id == chain_id
                            && p.proposal.batch == n
                    })
                    .cloned()
                else {
                    break;
                };
                let verdict = self.optimistic_outputs(chain_id, n, &p);
                // the batch's other pending proposals are not closed here: a lying one may be
                // under a game (or about to be challenged) and must still lose its bond; each
                // closes with its bond returned once its window is over and its games are won
                // (`tick_optimistic`), or is defeated by a game
                // mark the final proposal used, so it never applies again
                if let Some(rec) = self.optimistic.proposals.get_mut(&p.id) {
                    rec.status = ProposalStatus::Closed;
                }
                let Some(rec) = self
                    .chains
                    .get_mut(&chain_id)
                    .and_then(|c| c.batches.get_mut(&n))
                else {
                    break;
                };
                match verdict {
                    Ok(outputs) => {
                        rec.status = BatchStatus::Proven;
                        rec.outputs = Some(outputs);
                        events.push(SlEvent::BatchProven {
                            chain: chain_id,
                            batch: n,
                            by: Authority::Anyone,
                        });
                    }
                    Err(reason) => {
                        rec.failure = Some(reason.clone());
                        events.push(SlEvent::BatchCheckFailed {
                            chain: chain_id,
                            batch: n,
                            reason,
                        });
                        break;
                    }
                }
            }
        }
    }

    /// The batch outputs a final proposal gives, or why the batch fails.
    fn optimistic_outputs(
        &self,
        chain_id: ChainId,
        n: BatchNumber,
        p: &ProposalRecord,
    ) -> Result<BatchOutputs, String> {
        let chain = self.chains.get(&chain_id).ok_or("unknown chain")?;
        let rec = chain.batches.get(&n).ok_or("unknown batch")?;
        let (MachineState::Running { state_root, .. }, Some(out)) =
            (&p.proposal.end_state, &p.proposal.outputs)
        else {
            return Err(format!(
                "final optimistic proposal {}: the batch's execution fails",
                p.id
            ));
        };
        let h = &rec.header;
        let mismatch = |what: &str, claimed: String, final_: String| {
            format!(
                "final optimistic proposal {}: {what} is {final_}, the batch claims {claimed}",
                p.id
            )
        };
        if h.stateRoot != *state_root {
            return Err(mismatch(
                "the state root",
                h.stateRoot.to_string(),
                state_root.to_string(),
            ));
        }
        if h.chainBatchRoot != out.outbox_root || h.messageCount != out.message_count {
            return Err(mismatch(
                "the ChainBatchRoot",
                format!("{} ({} messages)", h.chainBatchRoot, h.messageCount),
                format!("{} ({} messages)", out.outbox_root, out.message_count),
            ));
        }
        let totals_before = if n > 1 {
            match chain.batches.get(&(n - 1)).and_then(|b| b.outputs.as_ref()) {
                Some(o) => o.totals_after,
                None => chain.executed_totals,
            }
        } else {
            chain.executed_totals
        };
        Ok(BatchOutputs {
            block_roots: rec
                .blocks
                .iter()
                .map(|b| braid_proof::BlockRoot {
                    number: b.header.number,
                    local_root: b.header.localRoot,
                    message_count: b.header.messageCount,
                })
                .collect(),
            totals_before,
            totals_after: out.totals,
            imports: rec.imports.clone(),
        })
    }

    /// Closes every proposal of reverted batches (`from..` of `chain`).
    pub(crate) fn optimistic_on_revert(&mut self, chain: ChainId, from: BatchNumber) {
        let hit: Vec<ProposalId> = self
            .optimistic
            .proposals
            .values()
            .filter(|p| {
                p.proposal.chain_id == chain
                    && p.proposal.batch >= from
                    && matches!(p.status, ProposalStatus::Pending | ProposalStatus::Final)
            })
            .map(|p| p.id)
            .collect();
        for id in hit {
            self.close_proposal(id);
            if let Some(p) = self.optimistic.proposals.get_mut(&id) {
                p.status = ProposalStatus::Closed;
            }
        }
    }
}

fn moved(game: GameId, g: &DisputeGame) -> SlEvent {
    SlEvent::GameMoved {
        game,
        range: g.range(),
        phase: g.phase().clone(),
    }
}

fn end_summary(state: &MachineState) -> Option<B256> {
    match state {
        MachineState::Running { state_root, .. } => Some(*state_root),
        MachineState::Invalid => None,
    }
}
