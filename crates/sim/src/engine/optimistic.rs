//! Optimistic settlement in the simulator (seed 004): honest proposers and challengers and their
//! adversaries (`braid_challenger::Agent`), fed with the SL's DA data and events, submitting
//! proposals, challenges and game moves; plus the report's game statistics and the invariant
//! that no wrong end state becomes final.

use std::collections::BTreeMap;

use alloy_primitives::{keccak256, Address, U256};
use braid_challenger::{Adversary, Agent, AgentInput, Role};
use braid_dispute::{rounds_needed, Outcome, Side};
use braid_execution::{ChainState, TxSigner};
use braid_primitives::{BatchNumber, ChainId};
use braid_settlement::{OptimisticConfig, SlEvent};

use super::Sim;
use crate::report::{GameStat, LatencyStats, OptimisticReport};
use crate::scenario::{OptimisticBehaviour, OptimisticSpec};

/// One agent of the run.
struct SimAgent {
    core: Agent,
    key: TxSigner,
    label: String,
    honest: bool,
}

/// The optimistic-settlement roles of a run.
pub(super) struct OptimisticNet {
    spec: OptimisticSpec,
    agents: Vec<SimAgent>,
    /// When each batch was committed (for the time to finality).
    committed_at: BTreeMap<(ChainId, BatchNumber), u64>,
    time_to_final: Vec<u64>,
    stats: OptimisticReport,
    slashed: U256,
    paid: U256,
}

/// Each agent's SL balance at genesis (bonds come from it).
fn agent_balance() -> U256 {
    U256::from(1_000u64) * U256::from(10u64).pow(U256::from(18u64))
}

/// SL key of agent `i` (proposers, then challengers, then adversaries).
fn agent_key(i: u32) -> Result<TxSigner, String> {
    TxSigner::from_secret(keccak256(format!("braid sim optimistic agent {i}")))
        .map_err(|e| e.to_string())
}

impl OptimisticNet {
    pub(super) fn new(
        spec: &OptimisticSpec,
        genesis: &[ChainState],
        sl_block_time_ms: u64,
    ) -> Result<Self, String> {
        let mut agents = Vec::new();
        let mut add = |label: String, role: Role, adversary: Option<Adversary>, honest: bool| {
            let key = agent_key(agents.len() as u32)?;
            let mut core = Agent::new(key.address(), role, adversary, spec.k);
            for state in genesis {
                core.handle(AgentInput::Follow {
                    genesis: Box::new(state.clone()),
                })
                .map_err(|e| e.to_string())?;
            }
            agents.push(SimAgent {
                core,
                key,
                label,
                honest,
            });
            Ok::<(), String>(())
        };
        for i in 0..spec.proposers {
            let role = Role {
                propose: true,
                challenge: false,
            };
            add(format!("proposer-{i}"), role, None, true)?;
        }
        for i in 0..spec.challengers {
            let role = Role {
                propose: false,
                challenge: true,
            };
            add(format!("challenger-{i}"), role, None, true)?;
        }
        for (i, a) in spec.adversaries.iter().enumerate() {
            let (role, adversary, name) = match (a.behaviour, a.stall) {
                (OptimisticBehaviour::WrongRoot, false) => (
                    Role {
                        propose: true,
                        challenge: false,
                    },
                    Adversary::WrongRoot,
                    "wrong-root",
                ),
                (OptimisticBehaviour::WrongRoot, true) => (
                    Role {
                        propose: true,
                        challenge: false,
                    },
                    Adversary::WrongRootStalling,
                    "wrong-root-stalling",
                ),
                (OptimisticBehaviour::Griefing, false) => (
                    Role {
                        propose: false,
                        challenge: true,
                    },
                    Adversary::Griefing,
                    "griefing",
                ),
                (OptimisticBehaviour::Griefing, true) => (
                    Role {
                        propose: false,
                        challenge: true,
                    },
                    Adversary::GriefingStalling,
                    "griefing-stalling",
                ),
            };
            add(format!("{name}-{i}"), role, Some(adversary), false)?;
        }
        let stats = OptimisticReport {
            k: spec.k,
            challenge_window_ms: spec.challenge_window_ms,
            clock_ms: spec.clock_ms,
            move_ms: spec.move_ms.unwrap_or(sl_block_time_ms),
            agents: agents
                .iter()
                .map(|a| (a.label.clone(), a.key.address().to_string()))
                .collect(),
            ..OptimisticReport::default()
        };
        Ok(Self {
            spec: spec.clone(),
            agents,
            committed_at: BTreeMap::new(),
            time_to_final: Vec::new(),
            stats,
            slashed: U256::ZERO,
            paid: U256::ZERO,
        })
    }

    /// The SL's optimistic parameters for `chains`.
    pub(super) fn sl_config(spec: &OptimisticSpec, chains: &[ChainId]) -> OptimisticConfig {
        OptimisticConfig {
            chains: chains.iter().copied().filter(|c| spec.covers(*c)).collect(),
            challenge_window_ms: spec.challenge_window_ms,
            k: spec.k,
            clock_ms: spec.clock_ms,
            move_ms: spec.move_ms,
            ..OptimisticConfig::default()
        }
    }

    /// SL balances of the agents at genesis (bonds come from them).
    pub(super) fn genesis_balances(spec: &OptimisticSpec) -> Result<Vec<(Address, U256)>, String> {
        let n = spec.proposers + spec.challengers + spec.adversaries.len() as u32;
        (0..n)
            .map(|i| agent_key(i).map(|k| (k.address(), agent_balance())))
            .collect()
    }

    fn label_of(&self, address: Address) -> String {
        self.agents
            .iter()
            .find(|a| a.key.address() == address)
            .map_or_else(|| address.to_string(), |a| a.label.clone())
    }

    pub(super) fn report(&self, chains: usize) -> OptimisticReport {
        let mut r = self.stats.clone();
        r.chains = chains;
        r.time_to_final_ms = LatencyStats::of(&self.time_to_final);
        r.bonds_slashed_wei = self.slashed.to_string();
        r.bonds_paid_wei = self.paid.to_string();
        r.bonds_burned_wei = (self.slashed - self.paid).to_string();
        r.moves = self.agents.iter().map(|a| a.core.stats().moves).sum();
        r
    }
}

impl Sim<'_> {
    /// An SL event reaches the agents (they run next to an SL node: no network between them).
    pub(super) fn optimistic_sl_event(&mut self, e: &SlEvent) -> Result<(), String> {
        let now = self.now;
        let Some(net) = self.optimistic.as_mut() else {
            return Ok(());
        };
        let input = match e {
            SlEvent::BatchCommitted { chain, batch, .. } if net.spec.covers(*chain) => {
                let Some(rec) = self.sl.batch(*chain, *batch) else {
                    return Ok(());
                };
                net.committed_at.insert((*chain, *batch), now);
                AgentInput::BatchCommitted {
                    chain: *chain,
                    batch: *batch,
                    blocks: rec.blocks.clone(),
                    claimed_state_root: rec.header.stateRoot,
                }
            }
            SlEvent::ProposalPosted { .. } => {
                net.stats.proposals += 1;
                AgentInput::Sl(e.clone())
            }
            SlEvent::ChallengeOpened { .. } => {
                net.stats.challenges += 1;
                AgentInput::Sl(e.clone())
            }
            SlEvent::ProposalDefeated { .. } => {
                net.stats.proposals_defeated += 1;
                AgentInput::Sl(e.clone())
            }
            SlEvent::ProposalFinalized {
                proposal,
                chain,
                batch,
            } => {
                net.stats.proposals_final += 1;
                if let Some(at) = net.committed_at.remove(&(*chain, *batch)) {
                    net.time_to_final.push(now.saturating_sub(at));
                }
                // invariant: a final end state is the one honest agents computed
                let end = self
                    .sl
                    .optimistic()
                    .proposal(*proposal)
                    .map(|p| p.proposal.end_state);
                let truth = net
                    .agents
                    .iter()
                    .filter(|a| a.honest)
                    .find_map(|a| a.core.computed_end(*chain, *batch));
                if let (Some(end), Some(truth)) = (end, truth) {
                    if end != truth {
                        return Err(format!(
                            "wrong_root_final: proposal {proposal} for batch {batch} of chain \
                             {chain} became final with {end:?}; re-execution gives {truth:?}"
                        ));
                    }
                }
                AgentInput::Sl(e.clone())
            }
            SlEvent::GameResolved(r) => {
                let steps = self
                    .sl
                    .optimistic()
                    .proposal(r.proposal)
                    .map_or(0, |p| p.proposal.steps);
                let (winner, decided_by) = match r.outcome {
                    Outcome::StepVerified { winner, .. } => (winner, "single_step"),
                    Outcome::ClockExpired { winner } => (winner, "clock"),
                };
                net.slashed += r.slashed;
                net.paid += r.reward;
                let config = self.sl.config();
                let stat = GameStat {
                    chain: r.chain,
                    batch: r.batch,
                    steps,
                    clock_ms: config
                        .optimistic
                        .game_clock_ms(steps, config.sl_block_time_ms),
                    rounds: r.rounds,
                    rounds_needed: rounds_needed(steps, net.spec.k),
                    duration_ms: r.duration_ms,
                    winner: match winner {
                        Side::Proposer => "proposer".into(),
                        Side::Challenger => "challenger".into(),
                    },
                    winner_agent: net.label_of(r.winner),
                    loser_agent: net.label_of(r.loser),
                    decided_by: decided_by.into(),
                    step_gas: r.step_gas,
                    slashed_wei: r.slashed.to_string(),
                };
                net.stats.games.push(stat);
                AgentInput::Sl(e.clone())
            }
            SlEvent::GameMoved { .. } | SlEvent::BatchesReverted { .. } => {
                AgentInput::Sl(e.clone())
            }
            _ => return Ok(()),
        };
        let mut calls = Vec::new();
        for a in &mut net.agents {
            // an agent's refusal of an input (a trace it cannot build) is its own problem
            if let Ok(out) = a.core.handle(input.clone()) {
                calls.extend(out.into_iter().map(|c| (a.key.clone(), c)));
            }
        }
        for (key, call) in calls {
            self.submit_signed(&key, call)?;
        }
        Ok(())
    }

    /// Whether a message in `optimistic` mode may execute now: its source batch's end state
    /// must be final on the SL (invariant `optimistic_before_final`).
    pub(super) fn optimistic_final(&self, source: ChainId, block: u64) -> bool {
        let Some(chain) = self.sl.chain(source) else {
            return false;
        };
        chain
            .batches
            .values()
            .find(|b| b.header.firstBlock <= block && block <= b.header.lastBlock)
            .is_some_and(|b| b.status != braid_settlement::BatchStatus::Committed)
            || chain.last_executed > 0
                && chain
                    .batches
                    .get(&chain.last_executed)
                    .is_some_and(|b| b.header.lastBlock >= block)
    }
}
