//! Optimistic-settlement agents (seed 004): a proposer that posts the end state of every batch of
//! the chains it follows, and a challenger that recomputes every proposal, challenges the wrong
//! ones and plays the k-section game to the end — as one sans-IO core, [`Agent`].
//!
//! The agent follows the chains from the DA data on the SL: for every committed batch it
//! re-executes the batch's steps ([`braid_execution::trace_batch`]) from its own end state of the
//! previous batch, and keeps the trace ([`braid_dispute::Trace`]). Inputs are SL facts
//! ([`AgentInput`]); outputs are SL calls to sign and submit. With [`Role::challenge`] it
//! challenges exactly the proposals whose end commitment differs from its own, and in a game it
//! chooses the first part whose end root differs from its trace ([`braid_dispute::honest_choice`]),
//! then brings the single step's witness ([`braid_execution::step_witness`]): an honest
//! challenger never challenges a correct root and always wins against a wrong one.
//!
//! The simulator's adversaries are behaviours of the same core ([`Adversary`]): a proposer that
//! lies about one step (its trace from that step on includes a deposit to itself that never
//! happened), a griefing challenger that disputes every proposal, and a party that stops moving.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256};
use braid_dispute::{boundaries, honest_choice, Phase, Trace};
use braid_execution::{
    apply_deposit, batch_steps, run_step, step_witness, ChainState, MachineState, StateKey,
    StateValue, Step,
};
use braid_primitives::{BatchNumber, Block, ChainId, Deposit};
use braid_settlement::{ClaimedOutputs, GameId, Proposal, ProposalId, SlCall, SlEvent};

/// Errors of the agent (inputs it cannot use; it then does nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// A chain it does not follow.
    #[error("chain {0} is not followed")]
    UnknownChain(ChainId),
    /// A trace could not be built.
    #[error("trace of chain {chain} batch {batch}: {reason}")]
    Trace {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// Why.
        reason: String,
    },
}

/// What the agent does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Role {
    /// Posts a proposal for every batch it can compute.
    pub propose: bool,
    /// Challenges proposals it disagrees with.
    pub challenge: bool,
}

/// Adversarial behaviours for the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adversary {
    /// Proposes a wrong end state: from step `max(1, n / 2)` on, its trace includes a deposit to
    /// itself that never happened (every later root differs).
    WrongRoot,
    /// Challenges every proposal but its own, right or wrong.
    Griefing,
    /// As [`Adversary::WrongRoot`], and stops moving in its games (its clock runs out).
    WrongRootStalling,
    /// As [`Adversary::Griefing`], and stops moving in its games (its clock runs out).
    GriefingStalling,
}

impl Adversary {
    fn lies(self) -> bool {
        matches!(self, Adversary::WrongRoot | Adversary::WrongRootStalling)
    }
    fn griefs(self) -> bool {
        matches!(self, Adversary::Griefing | Adversary::GriefingStalling)
    }
    fn stalls(self) -> bool {
        matches!(
            self,
            Adversary::WrongRootStalling | Adversary::GriefingStalling
        )
    }
}

/// An input to the agent.
#[derive(Debug, Clone)]
pub enum AgentInput {
    /// A chain to follow, with its genesis state.
    Follow {
        /// The genesis state.
        genesis: Box<ChainState>,
    },
    /// A batch was committed; its DA blocks and its claimed end state root.
    BatchCommitted {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// Its blocks.
        blocks: Vec<Block>,
        /// The state root its record claims.
        claimed_state_root: B256,
    },
    /// An SL event.
    Sl(SlEvent),
}

/// One batch as the agent computed it.
#[derive(Debug, Clone)]
struct BatchTrace {
    start: ChainState,
    steps: Vec<Step>,
    machines: Vec<MachineState>,
    trace: Trace,
    end_state: ChainState,
    claimed_state_root: B256,
    /// A lie, if this agent posted one: (machines, trace, end state).
    lie: Option<(Vec<MachineState>, Trace, ChainState)>,
}

impl BatchTrace {
    fn end(&self) -> MachineState {
        self.machines
            .last()
            .copied()
            .unwrap_or(MachineState::Invalid)
    }
}

/// A game this agent plays.
#[derive(Debug, Clone, Copy)]
struct MyGame {
    chain: ChainId,
    batch: BatchNumber,
    as_proposer: bool,
    /// The proposal's end commitment.
    proposal_end: B256,
}

/// Counters for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Proposals posted.
    pub proposals: u64,
    /// Challenges opened.
    pub challenges: u64,
    /// Game moves made (splits, choices, steps).
    pub moves: u64,
}

/// The agent core.
#[derive(Debug, Clone)]
pub struct Agent {
    address: Address,
    role: Role,
    adversary: Option<Adversary>,
    k: u64,
    genesis: BTreeMap<ChainId, ChainState>,
    batches: BTreeMap<(ChainId, BatchNumber), BatchTrace>,
    my_proposals: BTreeMap<ProposalId, (ChainId, BatchNumber)>,
    games: BTreeMap<GameId, MyGame>,
    stats: AgentStats,
}

impl Agent {
    /// An agent acting as `address`, for games with `k` parts per split.
    pub fn new(address: Address, role: Role, adversary: Option<Adversary>, k: u64) -> Self {
        Self {
            address,
            role,
            adversary,
            k,
            genesis: BTreeMap::new(),
            batches: BTreeMap::new(),
            my_proposals: BTreeMap::new(),
            games: BTreeMap::new(),
            stats: AgentStats::default(),
        }
    }

    /// The agent's SL address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Counters.
    pub fn stats(&self) -> AgentStats {
        self.stats
    }

    /// The end machine state the agent computed for a batch, if it could.
    pub fn computed_end(&self, chain: ChainId, batch: BatchNumber) -> Option<MachineState> {
        self.batches.get(&(chain, batch)).map(BatchTrace::end)
    }

    /// Handles one input; returns the SL calls to submit.
    pub fn handle(&mut self, input: AgentInput) -> Result<Vec<SlCall>, AgentError> {
        match input {
            AgentInput::Follow { genesis } => {
                self.genesis.insert(genesis.chain_id(), *genesis);
                Ok(vec![])
            }
            AgentInput::BatchCommitted {
                chain,
                batch,
                blocks,
                claimed_state_root,
            } => self.on_batch(chain, batch, &blocks, claimed_state_root),
            AgentInput::Sl(event) => Ok(self.on_event(event)),
        }
    }

    /// The state a batch starts from, as far as the SL is concerned: the end of the previous
    /// batch if this agent computed it and it matches what the batch record claims.
    fn start_state(
        &self,
        chain: ChainId,
        batch: BatchNumber,
    ) -> Result<Option<ChainState>, AgentError> {
        if batch <= 1 {
            return self
                .genesis
                .get(&chain)
                .cloned()
                .map(Some)
                .ok_or(AgentError::UnknownChain(chain));
        }
        let Some(prev) = self.batches.get(&(chain, batch - 1)) else {
            return Ok(None);
        };
        match prev.end() {
            MachineState::Running { state_root, .. } if state_root == prev.claimed_state_root => {
                Ok(Some(prev.end_state.clone()))
            }
            // the previous batch fails: this one will be reverted with it
            _ => Ok(None),
        }
    }

    fn on_batch(
        &mut self,
        chain: ChainId,
        batch: BatchNumber,
        blocks: &[Block],
        claimed_state_root: B256,
    ) -> Result<Vec<SlCall>, AgentError> {
        let Some(start) = self.start_state(chain, batch)? else {
            return Ok(vec![]);
        };
        let steps = batch_steps(blocks);
        let trace_err = |reason: String| AgentError::Trace {
            chain,
            batch,
            reason,
        };
        let (machines, end_state) = braid_execution::trace_batch(&start, &steps);
        let trace = commit(&machines).map_err(trace_err)?;
        let lie = if self.adversary.is_some_and(Adversary::lies) && !steps.is_empty() {
            Some(self.lying_trace(&start, &steps).map_err(trace_err)?)
        } else {
            None
        };
        let bt = BatchTrace {
            start,
            steps,
            machines,
            trace,
            end_state,
            claimed_state_root,
            lie,
        };
        self.batches.insert((chain, batch), bt);
        let mut calls = Vec::new();
        if self.role.propose {
            if let Some(p) = self.proposal(chain, batch) {
                self.stats.proposals += 1;
                calls.push(SlCall::Propose(Box::new(p)));
            }
        }
        Ok(calls)
    }

    /// A trace that credits the agent with a deposit that never happened, from the middle step.
    fn lying_trace(
        &self,
        start: &ChainState,
        steps: &[Step],
    ) -> Result<(Vec<MachineState>, Trace, ChainState), String> {
        let at = (steps.len() / 2).max(1);
        let mut state = start.clone();
        let mut machines = Vec::with_capacity(steps.len() + 1);
        let mut m = MachineState::Running {
            state_root: state.state_root(),
            block_gas_used: 0,
        };
        machines.push(m);
        for (i, step) in steps.iter().enumerate() {
            m = run_step(&mut state, &m, step);
            if i + 1 == at {
                let fake = Deposit {
                    index: state.totals().deposit_count,
                    chainId: state.chain_id(),
                    sender: self.address,
                    recipient: self.address,
                    amount: U256::from(10u64).pow(U256::from(18u64)),
                    queuedAtMs: 0,
                };
                apply_deposit(&mut state, &fake).map_err(|e| e.to_string())?;
                if let MachineState::Running { block_gas_used, .. } = m {
                    m = MachineState::Running {
                        state_root: state.state_root(),
                        block_gas_used,
                    };
                }
            }
            machines.push(m);
        }
        let trace = commit(&machines)?;
        Ok((machines, trace, state))
    }

    /// The proposal this agent posts for a batch (its lie if it lies).
    fn proposal(&mut self, chain: ChainId, batch: BatchNumber) -> Option<Proposal> {
        let bt = self.batches.get(&(chain, batch))?;
        let (machines, trace, end_state) = match &bt.lie {
            Some((m, t, s)) => (m, t, s),
            None => (&bt.machines, &bt.trace, &bt.end_state),
        };
        let n = bt.steps.len() as u64;
        let (_, start_proof) = trace.prove(0)?;
        let (_, end_proof) = trace.prove(n)?;
        let end_state_m = *machines.last()?;
        let outputs = match end_state_m {
            MachineState::Running { .. } => {
                let mut s = end_state.clone();
                let (_, outbox, outbox_proof) = s.prove(&StateKey::Outbox);
                let (_, totals, totals_proof) = s.prove(&StateKey::Totals);
                let (Some(StateValue::Outbox { root, count }), Some(StateValue::Totals(totals))) =
                    (outbox, totals)
                else {
                    return None;
                };
                Some(ClaimedOutputs {
                    outbox_root: root,
                    message_count: count,
                    outbox_proof,
                    totals,
                    totals_proof,
                })
            }
            MachineState::Invalid => None,
        };
        Some(Proposal {
            chain_id: chain,
            batch,
            trace_root: trace.commitment(),
            steps: n,
            start_proof,
            end_state: end_state_m,
            end_proof,
            outputs,
        })
    }

    fn on_event(&mut self, event: SlEvent) -> Vec<SlCall> {
        match event {
            SlEvent::ProposalPosted {
                proposal,
                chain,
                batch,
                proposer,
                end,
                ..
            } => {
                if proposer == self.address {
                    self.my_proposals.insert(proposal, (chain, batch));
                    return vec![];
                }
                if !self.role.challenge {
                    return vec![];
                }
                let disagree = match self.batches.get(&(chain, batch)) {
                    Some(bt) => bt.end().commitment() != end,
                    None => false,
                };
                if disagree || self.adversary.is_some_and(Adversary::griefs) {
                    self.stats.challenges += 1;
                    return vec![SlCall::Challenge { proposal }];
                }
                vec![]
            }
            SlEvent::ChallengeOpened {
                game,
                proposal,
                chain,
                batch,
                challenger,
                ..
            } => {
                let mine_as_proposer = self.my_proposals.contains_key(&proposal);
                if mine_as_proposer || challenger == self.address {
                    let proposal_end = self
                        .batches
                        .get(&(chain, batch))
                        .map(|bt| match (&bt.lie, mine_as_proposer) {
                            (Some((m, _, _)), true) => m.last().copied(),
                            _ => bt.machines.last().copied(),
                        })
                        .unwrap_or(None)
                        .map_or(B256::ZERO, |m| m.commitment());
                    self.games.insert(
                        game,
                        MyGame {
                            chain,
                            batch,
                            as_proposer: mine_as_proposer,
                            proposal_end,
                        },
                    );
                }
                vec![]
            }
            SlEvent::GameMoved { game, range, phase } => self.play(game, range, &phase),
            SlEvent::GameResolved(r) => {
                self.games.remove(&r.game);
                vec![]
            }
            SlEvent::ProposalDefeated { proposal, .. } => {
                // a defeated proposal of ours (we lied, or lost): propose again, honestly this time
                // only if we are not the liar
                self.my_proposals.remove(&proposal);
                vec![]
            }
            SlEvent::BatchesReverted { chain, from, .. } => {
                self.batches.retain(|(c, b), _| *c != chain || *b < from);
                self.my_proposals
                    .retain(|_, (c, b)| *c != chain || *b < from);
                self.games.retain(|_, g| g.chain != chain || g.batch < from);
                vec![]
            }
            _ => vec![],
        }
    }

    fn play(&mut self, game: GameId, range: (u64, u64), phase: &Phase) -> Vec<SlCall> {
        let Some(g) = self.games.get(&game).copied() else {
            return vec![];
        };
        if self.adversary.is_some_and(Adversary::stalls) {
            return vec![];
        }
        let Some(bt) = self.batches.get(&(g.chain, g.batch)) else {
            return vec![];
        };
        let (machines, trace) = match (&bt.lie, g.as_proposer) {
            (Some((m, t, _)), true) => (m, t),
            _ => (&bt.machines, &bt.trace),
        };
        let call = match phase {
            Phase::Split if g.as_proposer => {
                let roots: Option<Vec<_>> = boundaries(range.0, range.1, self.k)
                    .into_iter()
                    .map(|p| trace.prove(p))
                    .collect();
                roots.map(|roots| SlCall::Split { game, roots })
            }
            Phase::Choose(points) if !g.as_proposer => {
                honest_choice(points, range.1, trace).map(|part| SlCall::Choose {
                    game,
                    part: part as u32,
                })
            }
            Phase::SingleStep { step, claimed, .. } => {
                // the challenger brings the witness when the proposer's root is wrong; the
                // proposer brings it when its root is right (a griefer's game ends at once)
                let truth = usize::try_from(*step)
                    .ok()
                    .and_then(|s| bt.machines.get(s))
                    .map(|m| m.commitment());
                let right = truth == Some(*claimed);
                let bring = if g.as_proposer { right } else { !right };
                if bring && g.proposal_end != B256::ZERO {
                    witness_call(game, *step, bt)
                } else {
                    None
                }
            }
            _ => None,
        };
        let _ = machines;
        match call {
            Some(c) => {
                self.stats.moves += 1;
                vec![c]
            }
            None => vec![],
        }
    }
}

/// The trace commitment of a list of machine states.
fn commit(machines: &[MachineState]) -> Result<Trace, String> {
    let roots: Vec<B256> = machines.iter().map(MachineState::commitment).collect();
    Trace::new(roots).map_err(|e| e.to_string())
}

/// `proveStep` for step `step` (1-based) of `bt`, from the agent's true trace.
fn witness_call(game: GameId, step: u64, bt: &BatchTrace) -> Option<SlCall> {
    let index = usize::try_from(step).ok()?.checked_sub(1)?;
    let pre = *bt.machines.get(index)?;
    // the state before the step: replay the batch up to it
    let mut state = bt.start.clone();
    let mut m = *bt.machines.first()?;
    for s in bt.steps.get(..index)? {
        m = run_step(&mut state, &m, s);
    }
    let witness = step_witness(&state, &pre, bt.steps.get(index)?);
    Some(SlCall::ProveStep {
        game,
        pre,
        witness: Box::new(witness),
    })
}
