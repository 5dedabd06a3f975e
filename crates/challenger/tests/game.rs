//! The optimistic agents against the real SL core: a chain's sequencer produces batches with
//! transfers and messages, its operator commits them, and proposers and challengers play on the
//! SL — honest, lying, griefing and stalling. Checks outcomes, rounds, bonds and value, and that
//! bad optimistic calls are refused without changing anything.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use braid_challenger::{Adversary, Agent, AgentInput, Role};
use braid_dispute::{rounds_needed, Outcome, Side};
use braid_execution::TxSigner;
use braid_primitives::{ChainId, MESSENGER_ADDRESS};
use braid_proof::ReExecution;
use braid_sequencer::{Sequencer, SequencerConfig, SequencerInput, SequencerOutput};
use braid_settlement::{
    ChainGenesis, GameResult, OptimisticConfig, ProposalStatus, SettlementError, SettlementLayer,
    SlCall, SlConfig, SlEvent, SlInput, SlTx,
};

const CHAIN: ChainId = 901;
const ETH: u64 = 1_000_000_000_000_000_000;

fn key(tag: &str) -> TxSigner {
    TxSigner::from_secret(keccak256(tag.as_bytes())).unwrap()
}

struct Player {
    agent: Agent,
    key: TxSigner,
}

struct World {
    now: u64,
    sl: SettlementLayer,
    seq: Sequencer,
    operator: TxSigner,
    alice: TxSigner,
    alice_nonce: u64,
    players: Vec<Player>,
    pooled: BTreeMap<Address, u64>,
    events: Vec<SlEvent>,
    /// Players' calls refused by the SL.
    refused: Vec<(String, SettlementError)>,
    /// Before each `proveStep`, submit copies whose witness lacks one entry (each must fail).
    tamper_witnesses: bool,
    /// The operator requests execution of proven batches.
    execute: bool,
    /// Where alice's messages go.
    message_dest: ChainId,
}

fn config(k: u64, clock_ms: u64, agents: &[Address]) -> SlConfig {
    let mut c = SlConfig::new(key("council").address());
    c.sl_block_time_ms = 500;
    c.optimistic = OptimisticConfig {
        chains: vec![CHAIN],
        challenge_window_ms: 8_000,
        k,
        clock_ms,
        ..OptimisticConfig::default()
    };
    c.genesis_balances = agents
        .iter()
        .map(|a| (*a, U256::from(100u64) * U256::from(ETH)))
        .collect();
    c
}

impl World {
    fn new(k: u64, clock_ms: u64, players: Vec<(&str, Role, Option<Adversary>)>) -> Self {
        let keys: Vec<TxSigner> = players.iter().map(|(t, _, _)| key(t)).collect();
        let addresses: Vec<Address> = keys.iter().map(TxSigner::address).collect();
        let mut sl = SettlementLayer::new(
            config(k, clock_ms, &addresses),
            Box::new(ReExecution::new()),
        )
        .unwrap();
        let alice = TxSigner::dev(0);
        let alloc = vec![(alice.address(), U256::from(100u64) * U256::from(ETH))];
        let mut c = SequencerConfig::new(CHAIN);
        c.block_time_ms = 1_000;
        c.batch_blocks = 3;
        let (seq, genesis) = Sequencer::genesis(c, &alloc).unwrap();
        let operator = key("operator");
        let register = SlCall::RegisterChain(ChainGenesis {
            chain_id: CHAIN,
            operator: operator.address(),
            alloc,
            genesis_header: genesis.block.header.clone(),
        });
        let tx = SlTx::sign_with(&key("council"), 0, register).unwrap();
        assert!(sl.handle(SlInput::Submit(Box::new(tx))).is_empty());
        let registered = sl.handle(SlInput::Tick { now_ms: 0 });
        assert!(registered
            .iter()
            .any(|e| matches!(e, SlEvent::ChainRegistered { chain: CHAIN })));
        let players = players
            .into_iter()
            .zip(keys)
            .map(|((_, role, adversary), key)| {
                let mut agent = Agent::new(key.address(), role, adversary, k);
                agent
                    .handle(AgentInput::Follow {
                        genesis: Box::new(seq.state().clone()),
                    })
                    .unwrap();
                Player { agent, key }
            })
            .collect();
        Self {
            now: 0,
            sl,
            seq,
            operator,
            alice,
            alice_nonce: 0,
            players,
            pooled: BTreeMap::new(),
            events: Vec::new(),
            refused: Vec::new(),
            tamper_witnesses: false,
            execute: false,
            message_dest: 902,
        }
    }

    fn submit(&mut self, signer: &TxSigner, call: SlCall) -> Option<SettlementError> {
        let from = signer.address();
        let nonce = self.sl.nonce(&from) + self.pooled.get(&from).copied().unwrap_or(0);
        let tx = SlTx::sign_with(signer, nonce, call).unwrap();
        if let Some(SlEvent::TxRejected { error, .. }) =
            self.sl.handle(SlInput::Submit(Box::new(tx))).pop()
        {
            return Some(error);
        }
        *self.pooled.entry(from).or_default() += 1;
        None
    }

    /// One SL block; returns its events after feeding them to the players.
    fn sl_block(&mut self) -> Vec<SlEvent> {
        let events = self.sl.handle(SlInput::Tick { now_ms: self.now });
        self.pooled.clear();
        for e in &events {
            if let SlEvent::TxRejected { call, error, .. } = e {
                self.refused.push((call.to_string(), error.clone()));
            }
            if let (true, SlEvent::BatchProven { chain, batch, .. }) = (self.execute, e) {
                let call = SlCall::ExecuteBatch {
                    chain_id: *chain,
                    batch: *batch,
                    extension_proofs: vec![],
                };
                let op = self.operator.clone();
                assert!(self.submit(&op, call).is_none());
            }
            let input = match e {
                SlEvent::BatchCommitted { chain, batch, .. } => {
                    let rec = self.sl.batch(*chain, *batch).unwrap();
                    AgentInput::BatchCommitted {
                        chain: *chain,
                        batch: *batch,
                        blocks: rec.blocks.clone(),
                        claimed_state_root: rec.header.stateRoot,
                    }
                }
                other => AgentInput::Sl(other.clone()),
            };
            let mut calls = Vec::new();
            for p in &mut self.players {
                for c in p.agent.handle(input.clone()).unwrap() {
                    calls.push((p.key.clone(), c));
                }
            }
            for (k, c) in calls {
                if let (true, SlCall::ProveStep { game, pre, witness }) =
                    (self.tamper_witnesses, &c)
                {
                    for drop in 0..witness.entries.len() {
                        let mut w = witness.clone();
                        w.entries.remove(drop);
                        let bad = SlCall::ProveStep {
                            game: *game,
                            pre: *pre,
                            witness: w,
                        };
                        assert!(self.submit(&k, bad).is_none());
                    }
                }
                if let Some(err) = self.submit(&k, c) {
                    self.refused.push(("submit".into(), err));
                }
            }
        }
        self.events.extend(events.iter().cloned());
        events
    }

    /// A user transfer and a message every block until `traffic_until`; blocks and batches
    /// (committed by the operator); SL blocks every 500 ms.
    fn run(&mut self, until: u64, traffic_until: u64) {
        while self.now < until {
            self.now += 500;
            if self.now.is_multiple_of(1_000) && self.now <= traffic_until {
                let n = self.alice_nonce;
                let raw = if n.is_multiple_of(2) {
                    self.alice
                        .call(
                            CHAIN,
                            n,
                            Address::repeat_byte(0xb0),
                            U256::from(1_000u64),
                            Bytes::new(),
                            21_000,
                        )
                        .unwrap()
                } else {
                    let data = braid_primitives::IMessenger::sendMessageCall {
                        destChain: U256::from(self.message_dest),
                        recipient: Address::repeat_byte(0xc0),
                        payload: Bytes::from_static(b"hi"),
                    };
                    self.alice
                        .call(
                            CHAIN,
                            n,
                            MESSENGER_ADDRESS,
                            U256::from(7u64),
                            alloy_sol_types::SolCall::abi_encode(&data).into(),
                            200_000,
                        )
                        .unwrap()
                };
                self.alice_nonce += 1;
                self.seq.handle(SequencerInput::SubmitTx { raw });
            }
            for out in self.seq.handle(SequencerInput::Tick { now_ms: self.now }) {
                if let SequencerOutput::BatchSealed(b) = out {
                    let call = SlCall::CommitBatch {
                        header: b.header.clone(),
                        imports: vec![],
                        blocks: b.blocks.clone(),
                    };
                    let op = self.operator.clone();
                    assert!(self.submit(&op, call).is_none());
                }
            }
            self.sl_block();
        }
    }

    fn games(&self) -> Vec<GameResult> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SlEvent::GameResolved(r) => Some(*r),
                _ => None,
            })
            .collect()
    }

    fn proven(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, SlEvent::BatchProven { .. }))
            .count()
    }
}

fn honest_proposer() -> Role {
    Role {
        propose: true,
        challenge: false,
    }
}
fn challenger() -> Role {
    Role {
        propose: false,
        challenge: true,
    }
}

#[test]
fn honest_proposals_prove_batches_after_the_window_without_games() {
    let mut w = World::new(
        4,
        3_000,
        vec![("p", honest_proposer(), None), ("c", challenger(), None)],
    );
    let value = w.sl.total_value();
    w.run(30_000, 15_000);
    assert!(w.games().is_empty());
    assert!(w.proven() >= 4, "{} batches proven", w.proven());
    // every proven batch's header matches what the proposer computed
    for e in &w.events {
        if let SlEvent::BatchProven { batch, .. } = e {
            let rec = w.sl.batch(CHAIN, *batch).unwrap();
            let computed = w.players[0].agent.computed_end(CHAIN, *batch).unwrap();
            match computed {
                braid_execution::MachineState::Running { state_root, .. } => {
                    assert_eq!(state_root, rec.header.stateRoot)
                }
                braid_execution::MachineState::Invalid => panic!("valid batch computed invalid"),
            }
        }
    }
    assert_eq!(w.sl.total_value(), value, "bonds are held, then returned");
    assert!(w.refused.is_empty(), "{:?}", w.refused);
}

#[test]
fn a_wrong_root_loses_at_its_first_wrong_step_in_log_k_rounds() {
    for k in [2u64, 4] {
        let mut w = World::new(
            k,
            3_000,
            vec![
                ("p", honest_proposer(), None),
                ("liar", honest_proposer(), Some(Adversary::WrongRoot)),
                ("c", challenger(), None),
            ],
        );
        let liar = w.players[1].key.address();
        let c = w.players[2].key.address();
        let (liar_before, c_before) = (w.sl.balance(&liar), w.sl.balance(&c));
        let value = w.sl.total_value();
        w.run(40_000, 15_000);
        let games = w.games();
        assert!(games.len() >= 3, "k={k}: {} games", games.len());
        for g in &games {
            assert_eq!(g.outcome.winner(), Side::Challenger, "{g:?}");
            assert!(matches!(g.outcome, Outcome::StepVerified { .. }), "{g:?}");
            let steps =
                w.sl.optimistic()
                    .proposal(g.proposal)
                    .unwrap()
                    .proposal
                    .steps;
            // ceil(log_k n) along the largest parts; a smaller part may need one round less
            let needed = rounds_needed(steps, k);
            assert!(g.rounds <= needed, "k={k}, {steps} steps: {g:?}");
            assert!(g.rounds + 1 >= needed, "k={k}, {steps} steps: {g:?}");
            assert_eq!(g.loser, liar);
            assert!(g.step_gas.unwrap() > 21_000);
        }
        // no lie is ever final (the liar's proposals for batches without steps are true)
        let honest = &w.players[0].agent;
        for p in w.sl.optimistic().proposals.values() {
            if p.status == ProposalStatus::Final {
                let truth = honest.computed_end(CHAIN, p.proposal.batch);
                assert_eq!(Some(p.proposal.end_state), truth, "{p:?}");
            }
        }
        assert!(w.proven() >= 4);
        let bond = U256::from(ETH);
        let lost = U256::from(games.len() as u64) * bond;
        let held =
            w.sl.optimistic()
                .proposals
                .values()
                .filter(|p| p.proposer == liar && p.status == ProposalStatus::Pending)
                .count();
        assert_eq!(
            w.sl.balance(&liar),
            liar_before - lost - U256::from(held as u64) * bond
        );
        assert_eq!(w.sl.balance(&c), c_before + lost / U256::from(2u8));
        // value: what was burned left the system, nothing else
        assert_eq!(
            w.sl.total_value(),
            value,
            "burned bonds are counted as burned"
        );
        assert_eq!(w.sl.optimistic().burned, lost / U256::from(2u8));
    }
}

#[test]
fn a_witness_missing_any_touched_item_is_refused_and_the_game_goes_on() {
    let mut w = World::new(
        4,
        3_000,
        vec![
            ("p", honest_proposer(), None),
            ("liar", honest_proposer(), Some(Adversary::WrongRoot)),
            ("c", challenger(), None),
        ],
    );
    w.tamper_witnesses = true;
    w.run(30_000, 10_000);
    let refused: Vec<_> = w
        .refused
        .iter()
        .filter(|(call, _)| call == "proveStep")
        .collect();
    assert!(refused.len() >= 6, "{refused:?}");
    for (_, e) in &refused {
        assert!(e.to_string().contains("witness refused"), "{e}");
    }
    // the complete witnesses that followed still won every game
    let games = w.games();
    assert!(!games.is_empty());
    assert!(games.iter().all(|g| g.outcome.winner() == Side::Challenger));
}

#[test]
fn a_withdrawal_is_paid_once_against_a_final_root() {
    let mut w = World::new(
        4,
        3_000,
        vec![("p", honest_proposer(), None), ("c", challenger(), None)],
    );
    w.execute = true;
    w.message_dest = braid_primitives::SETTLEMENT_LAYER_CHAIN_ID;
    w.run(30_000, 8_000);
    // alice's first message (nonce 0, sent by her second transaction): 7 wei to 0xc0… on the SL
    let message = braid_primitives::Message {
        sourceChain: CHAIN,
        nonce: 0,
        sender: w.alice.address(),
        destChain: 0,
        recipient: Address::repeat_byte(0xc0),
        value: U256::from(7u64),
        mode: braid_primitives::ImportKind::Proof as u8,
        payload: Bytes::from_static(b"hi"),
    };
    let chain = w.sl.chain(CHAIN).unwrap();
    let batch = chain
        .batches
        .values()
        .find(|b| b.header.messageCount > 0)
        .unwrap()
        .header
        .clone();
    assert!(chain.last_executed >= batch.number, "the batch executed");
    let size = w.sl.message_tree().len();
    let (root, outer) = w.sl.batch_leaf_proof(CHAIN, batch.number, size).unwrap();
    let inner = w
        .seq
        .state()
        .outbox()
        .inclusion_proof(0, batch.messageCount)
        .unwrap();
    let proof =
        braid_execution::two_level_proof(root, batch.number, batch.chainBatchRoot, inner, outer);
    let claimer = key("claimer");
    let before = w.sl.balance(&message.recipient);
    let value = w.sl.total_value();
    // a forged value, then the real claim, then a replay
    let mut forged = message.clone();
    forged.value = U256::from(7_000u64);
    for m in [forged, message.clone(), message.clone()] {
        let call = SlCall::Withdraw {
            message: m,
            proof: proof.clone(),
        };
        assert!(w.submit(&claimer, call).is_none());
    }
    w.players.clear();
    w.now += 500;
    let events = w.sl_block();
    let paid: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, SlEvent::Withdrawn { .. }))
        .collect();
    assert_eq!(paid.len(), 1, "{events:#?}");
    let refused: Vec<_> = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                SlEvent::TxRejected {
                    error: SettlementError::WithdrawalRefused { .. },
                    ..
                }
            )
        })
        .collect();
    assert_eq!(refused.len(), 2, "the forgery and the replay: {events:#?}");
    assert_eq!(w.sl.balance(&message.recipient), before + U256::from(7u64));
    assert_eq!(w.sl.total_value(), value, "paid out of the in-flight pool");
}

#[test]
fn a_griefing_challenger_loses_every_game_and_its_bonds() {
    let mut w = World::new(
        4,
        3_000,
        vec![
            ("p", honest_proposer(), None),
            ("griefer", challenger(), Some(Adversary::Griefing)),
        ],
    );
    let griefer = w.players[1].key.address();
    let before = w.sl.balance(&griefer);
    w.run(40_000, 12_000);
    let games = w.games();
    assert!(games.len() >= 3);
    for g in &games {
        assert_eq!(g.outcome.winner(), Side::Proposer, "{g:?}");
        assert_eq!(g.loser, griefer);
    }
    assert!(w.proven() >= 3, "challenged proposals still become final");
    assert_eq!(
        w.sl.balance(&griefer),
        before - U256::from(games.len() as u64 * ETH)
    );
}

#[test]
fn a_stalling_liar_loses_on_its_clock() {
    let clock = 2_000;
    let mut w = World::new(
        4,
        clock,
        vec![
            ("p", honest_proposer(), None),
            (
                "staller",
                honest_proposer(),
                Some(Adversary::WrongRootStalling),
            ),
            ("c", challenger(), None),
        ],
    );
    w.run(30_000, 10_000);
    let games = w.games();
    // a one-step trace starts at its single step: the challenger ends it at once
    let stalled: Vec<_> = games
        .iter()
        .filter(|g| {
            w.sl.optimistic()
                .proposal(g.proposal)
                .unwrap()
                .proposal
                .steps
                > 1
        })
        .collect();
    assert!(!stalled.is_empty(), "{games:?}");
    for g in stalled {
        assert!(
            matches!(
                g.outcome,
                Outcome::ClockExpired {
                    winner: Side::Challenger
                }
            ),
            "{g:?}"
        );
        assert!(g.duration_ms >= clock);
        assert_eq!(g.rounds, 0, "the staller never split");
    }
    for g in &games {
        assert_eq!(g.outcome.winner(), Side::Challenger, "{g:?}");
    }
}

/// A liar's proposal under an open game (its challenger never moves), for the bad-input tests.
fn world_with_open_game() -> (World, u64) {
    let mut w = World::new(
        2,
        60_000,
        vec![
            ("liar", honest_proposer(), Some(Adversary::WrongRoot)),
            ("c", challenger(), Some(Adversary::GriefingStalling)),
        ],
    );
    // the stalling challenger opens games but never moves: drive it by hand
    w.run(6_000, 6_000);
    let game = *w.sl.optimistic().games.keys().next().expect("a game");
    (w, game)
}

#[test]
fn bad_optimistic_calls_are_refused_and_change_nothing() {
    let (mut w, game) = world_with_open_game();
    // the agents go quiet; their last calls land first
    let liar = w.players[0].key.clone();
    let c = w.players[1].key.clone();
    w.players.clear();
    w.now += 500;
    w.sl_block();
    let stranger = key("stranger");
    let proposal = w.sl.optimistic().game(game).unwrap().proposal;
    let p =
        w.sl.optimistic()
            .proposal(proposal)
            .unwrap()
            .proposal
            .clone();

    // proveBatch on an optimistic chain
    let op = w.operator.clone();
    let prove = SlCall::ProveBatch {
        chain_id: CHAIN,
        batch: 1,
        proof: Bytes::new(),
    };
    assert!(w.submit(&op, prove).is_none());
    // a proposal with the wrong step count, a broken end proof, or a stranger without a bond
    let mut wrong_steps = p.clone();
    wrong_steps.steps += 1;
    let mut broken = p.clone();
    broken.end_proof.siblings.push(B256::repeat_byte(1));
    let mut other_batch = p.clone();
    other_batch.batch = 99;
    for bad in [wrong_steps, broken, other_batch] {
        let l = liar.clone();
        assert!(w.submit(&l, SlCall::Propose(Box::new(bad))).is_none());
    }
    assert!(w
        .submit(&stranger, SlCall::Propose(Box::new(p.clone())))
        .is_none());
    // a split by the challenger, a choice by a stranger, a step on a game not at one step
    assert!(w
        .submit(
            &c,
            SlCall::Split {
                game,
                roots: vec![]
            }
        )
        .is_none());
    assert!(w
        .submit(&stranger, SlCall::Choose { game, part: 0 })
        .is_none());
    let before = w.refused.len();
    let proposals = w.sl.optimistic().proposals.len();
    let games = w.sl.optimistic().games.len();
    let value = w.sl.total_value();
    w.now += 500;
    w.sl_block();
    let refused: Vec<_> = w.refused[before..].to_vec();
    assert_eq!(refused.len(), 7, "{refused:#?}");
    assert!(refused.iter().all(|(_, e)| matches!(
        e,
        SettlementError::Optimistic { .. } | SettlementError::UnknownBatch { .. }
    )));
    assert_eq!(w.sl.optimistic().proposals.len(), proposals);
    assert_eq!(w.sl.optimistic().games.len(), games);
    assert_eq!(w.sl.total_value(), value);
}
