//! A plain test harness driving the real cores in lock step, through the same wiring as the
//! simulator, the devnet and the role processes (`braid-driver`: a `ChainRole` per chain —
//! sequencer and operator — and a `RelayerRole`), with invariant checks after every step.
#![allow(clippy::unwrap_used, clippy::panic, dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_sol_types::SolCall as _;
use braid_driver::{
    route, ChainEffect, ChainRole, LocalChain, LocalChains, RelayerEffect, RelayerRole,
    RollbackCause,
};
use braid_execution::{ExecutionError, TxSigner};
use braid_operator::{Operator, OperatorConfig};
use braid_primitives::{
    BatchNumber, Block, ChainId, IMessenger, ImportKind, Message, MessageId, MessageProof,
    MESSENGER_ADDRESS,
};
use braid_proof::{ProofSystem, ReExecution};
use braid_relayer::{
    execute_message_calldata, MessageStatus, Relayer, RelayerConfig, RelayerInput,
};
use braid_sequencer::{SealedBatch, Sequencer, SequencerConfig, SequencerOutput};
use braid_settlement::{
    AggregationConfig, ChainGenesis, SettlementLayer, SlCall, SlConfig, SlEvent, SlInput, SlTx,
};

pub const ETH: u128 = 1_000_000_000_000_000_000;
pub const BLOCK_MS: u64 = 1_000;

pub fn secret(tag: &str) -> B256 {
    alloy_primitives::keccak256(tag.as_bytes())
}

pub fn address_of(secret: &B256) -> Address {
    TxSigner::from_secret(*secret).unwrap().address()
}

pub fn alice() -> TxSigner {
    TxSigner::dev(0)
}

/// An SL account with a balance to deposit from.
pub fn depositor() -> B256 {
    secret("depositor")
}

pub fn relayer() -> TxSigner {
    TxSigner::dev(7)
}

pub fn bob() -> Address {
    Address::repeat_byte(0xb0)
}

/// What the operator of a chain does with its sealed batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorMode {
    /// Commit, prove and request execution as soon as possible.
    Honest,
    /// Commit only.
    CommitOnly,
    /// Do nothing (stalled).
    Stalled,
}

pub struct Node {
    /// The chain node (sequencer + operator), as every shell runs it; its operator is driven
    /// unless the mode is `Stalled`.
    pub role: ChainRole,
    pub operator: B256,
    pub mode: OperatorMode,
    /// Every batch the sequencer sealed, by number.
    pub batches: BTreeMap<BatchNumber, SealedBatch>,
    /// Every block, by number.
    pub blocks: BTreeMap<u64, Block>,
    /// Optional tampering of a batch before it is committed (the sequencer keeps the real one).
    pub tamper: Option<fn(&mut SealedBatch)>,
    /// Optional tampering of extension proofs before execution is requested.
    pub tamper_extension: bool,
    /// The sequencer ignores deposits from the SL.
    pub censor_deposits: bool,
}

impl Node {
    /// The sequencer.
    pub fn seq(&self) -> &Sequencer {
        self.role.seq()
    }
}

impl LocalChain for Node {
    fn chain_role(&self) -> &ChainRole {
        &self.role
    }
    fn chain_role_mut(&mut self) -> &mut ChainRole {
        &mut self.role
    }
}

/// A message the relayer is carrying (a view of the relayer core, refreshed every step).
#[derive(Debug, Clone)]
pub struct Tracked {
    pub message: Message,
    pub mode: ImportKind,
    pub source_block: u64,
    pub executed: bool,
    pub status: MessageStatus,
}

pub struct Net {
    pub now: u64,
    pub sl: SettlementLayer,
    pub council: B256,
    pub nodes: BTreeMap<ChainId, Node>,
    /// The relayer, as every shell runs it.
    pub relayer: RelayerRole,
    /// Relayer effects not carried out yet (carried out at the end of a step if `auto_relay`).
    pub relay_queue: Vec<RelayerEffect>,
    /// Every relayer error action.
    pub relayer_errors: Vec<braid_relayer::RelayerError>,
    /// Messages ever seen, in the order the relayer first reported them.
    pub tracked: Vec<Tracked>,
    pub sl_events: Vec<SlEvent>,
    pub dropped: Vec<(ChainId, ExecutionError)>,
    /// Executions seen on each destination, with the block.
    pub executed_ids: BTreeMap<ChainId, BTreeMap<MessageId, u64>>,
    pub executed_batches: BTreeSet<(ChainId, BatchNumber)>,
    pub initial_sl_value: U256,
    pub auto_relay: bool,
}

pub fn chain_config(id: ChainId) -> SequencerConfig {
    let mut c = SequencerConfig::new(id);
    c.block_time_ms = BLOCK_MS;
    c.batch_blocks = 2;
    c.fee_recipient = Address::repeat_byte(0xfe);
    c
}

pub fn alloc() -> Vec<(Address, U256)> {
    vec![
        (alice().address(), U256::from(100 * ETH)),
        (relayer().address(), U256::from(10 * ETH)),
    ]
}

impl Net {
    pub fn new(chains: &[ChainId]) -> Self {
        Self::with_proofs(chains, Box::new(ReExecution::new()))
    }

    pub fn with_proofs(chains: &[ChainId], proofs: Box<dyn ProofSystem + Send>) -> Self {
        let council = secret("council");
        let mut config = SlConfig::new(address_of(&council));
        config.sl_block_time_ms = BLOCK_MS;
        config.timeout_operator_ms = 20_000;
        config.timeout_council_ms = 40_000;
        config.deposit_inclusion_window_ms = 5_000;
        config.genesis_balances = vec![(address_of(&depositor()), U256::from(1_000 * ETH))];
        let sl = SettlementLayer::new(config, proofs).unwrap();
        let mut net = Net {
            now: 0,
            sl,
            council,
            nodes: BTreeMap::new(),
            relayer: RelayerRole::new(
                Relayer::new(RelayerConfig::new(chains.to_vec())),
                relayer(),
                10 * BLOCK_MS,
            ),
            relay_queue: vec![],
            relayer_errors: vec![],
            tracked: vec![],
            sl_events: vec![],
            dropped: vec![],
            executed_ids: BTreeMap::new(),
            executed_batches: BTreeSet::new(),
            initial_sl_value: U256::ZERO,
            auto_relay: true,
        };
        for (i, id) in chains.iter().enumerate() {
            let (seq, genesis) = Sequencer::genesis(chain_config(*id), &alloc()).unwrap();
            let operator = secret(&format!("operator {id}"));
            let call = SlCall::RegisterChain(ChainGenesis {
                chain_id: *id,
                operator: address_of(&operator),
                alloc: alloc(),
                genesis_header: genesis.block.header.clone(),
            });
            net.submit_sl(&council.clone(), i as u64, call);
            let actions = net.relayer.handle(
                0,
                RelayerInput::SourceBlock {
                    block: genesis.block.clone(),
                    receipts: genesis.receipts.clone(),
                },
            );
            net.queue_relayer(actions);
            let role = ChainRole::new(
                seq,
                Operator::new(OperatorConfig::new(*id)),
                AggregationConfig::default(),
            )
            .unwrap();
            let mut blocks = BTreeMap::new();
            blocks.insert(0, genesis.block);
            net.nodes.insert(
                *id,
                Node {
                    role,
                    operator,
                    mode: OperatorMode::Honest,
                    batches: BTreeMap::new(),
                    blocks,
                    tamper: None,
                    tamper_extension: false,
                    censor_deposits: false,
                },
            );
        }
        let events = net.sl.handle(SlInput::Tick { now_ms: 0 });
        assert!(
            events
                .iter()
                .all(|e| !matches!(e, SlEvent::TxRejected { .. })),
            "{events:?}"
        );
        net.observe_sl(&events);
        net.sl_events.extend(events);
        net.initial_sl_value = net.sl.total_value();
        net
    }

    pub fn submit_sl(&mut self, key: &B256, nonce: u64, call: SlCall) {
        let tx = SlTx::sign(key, nonce, call).unwrap();
        let events = self.sl.handle(SlInput::Submit(Box::new(tx)));
        self.observe_sl(&events);
        self.sl_events.extend(events);
    }

    /// Queues relayer effects; errors are recorded (no honest run produces any).
    fn queue_relayer(&mut self, effects: Vec<RelayerEffect>) {
        for a in effects {
            match a {
                RelayerEffect::Error(e) => self.relayer_errors.push(e),
                other => self.relay_queue.push(other),
            }
        }
    }

    /// Feeds SL events to the relayer and to every chain node, and carries out what the nodes
    /// ask for.
    fn observe_sl(&mut self, events: &[SlEvent]) {
        for e in events {
            let actions = self.relayer.observe_sl(self.now, e);
            self.queue_relayer(actions);
            let ids: Vec<ChainId> = self.nodes.keys().copied().collect();
            for id in ids {
                let node = self.nodes.get_mut(&id).unwrap();
                let censored = node.censor_deposits
                    && matches!(e, SlEvent::DepositQueued(d) if d.chainId == id);
                if censored || !route::operator_concerns(id, e) {
                    continue;
                }
                let effects = node.role.observe_sl(e, &self.sl).unwrap();
                for effect in effects {
                    self.chain_effect(id, effect);
                }
            }
        }
    }

    /// Applies what chain `id`'s node asked for.
    fn chain_effect(&mut self, id: ChainId, effect: ChainEffect) {
        match effect {
            ChainEffect::BlockSealed { block, .. } => {
                self.sequencer_output(id, SequencerOutput::BlockSealed(block))
            }
            ChainEffect::BatchSealed { batch, .. } => {
                self.sequencer_output(id, SequencerOutput::BatchSealed(batch))
            }
            ChainEffect::Output(out) => self.sequencer_output(id, out),
            ChainEffect::RolledBack { outcome, cause } => {
                let first_void = outcome.head.number + 1;
                let node = self.nodes.get_mut(&id).unwrap();
                node.batches.retain(|n, _| *n <= outcome.last_batch);
                node.blocks.retain(|n, _| *n < first_void);
                if let Some(ids) = self.executed_ids.get_mut(&id) {
                    ids.retain(|_, b| *b < first_void);
                }
                let _: RollbackCause = cause;
                let mut dests = LocalChains {
                    chains: &mut self.nodes,
                    now_ms: self.now,
                };
                let effects = self.relayer.dest_rolled_back(id, &mut dests);
                self.queue_relayer(effects);
            }
            ChainEffect::ImportRefused { import, .. } => {
                let effects = self.relayer.import_refused(self.now, id, import);
                self.queue_relayer(effects);
            }
            ChainEffect::Doomed { .. }
            | ChainEffect::Finalized { .. }
            | ChainEffect::CheckFailed { .. }
            | ChainEffect::SlGap { .. } => {}
        }
    }

    /// Sends a message from `source` to `dest` in `mode` (alice → bob).
    pub fn send(&mut self, source: ChainId, dest: ChainId, value: u128, mode: ImportKind) {
        let node = self.nodes.get_mut(&source).unwrap();
        let nonce = node.seq().state().account(&alice().address()).nonce
            + node.seq().mempool().len() as u64;
        let input = IMessenger::sendMessageWithModeCall {
            destChain: U256::from(dest),
            recipient: bob(),
            payload: Bytes::from(mode.name().as_bytes().to_vec()),
            mode: mode as u8,
        }
        .abi_encode();
        let raw = alice()
            .call(
                source,
                nonce,
                MESSENGER_ADDRESS,
                U256::from(value),
                input.into(),
                200_000,
            )
            .unwrap();
        let out = node.role.submit_tx(raw);
        assert!(
            matches!(
                &out[..],
                [ChainEffect::Output(SequencerOutput::TxAccepted { .. })]
            ),
            "{out:?}"
        );
    }

    /// Advances time by one block and runs every role once.
    pub fn step(&mut self) {
        self.now += BLOCK_MS;
        let ids: Vec<ChainId> = self.nodes.keys().copied().collect();
        let dests = LocalChains {
            chains: &mut self.nodes,
            now_ms: self.now,
        };
        let effects = self.relayer.tick(self.now, &dests);
        self.queue_relayer(effects);
        for id in &ids {
            let now = self.now;
            let node = self.nodes.get_mut(id).unwrap();
            if let Some(tamper) = node.tamper {
                node.role.alter_next_batch(tamper);
            }
            let effects = node.role.tick(now).unwrap();
            for effect in effects {
                self.chain_effect(*id, effect);
            }
        }
        for id in &ids {
            self.operate(*id);
        }
        let events = self.sl.handle(SlInput::Tick { now_ms: self.now });
        for e in &events {
            if let SlEvent::BatchExecuted { chain, batch, .. } = e {
                self.executed_batches.insert((*chain, *batch));
            }
            if let SlEvent::BatchesReverted {
                chain, from, to, ..
            } = e
            {
                for n in *from..=*to {
                    assert!(
                        !self.executed_batches.contains(&(*chain, n)),
                        "executed batch reverted"
                    );
                }
            }
        }
        self.observe_sl(&events);
        self.sl_events.extend(events);
        if self.auto_relay {
            self.relay();
        }
        self.refresh_tracked();
        assert!(
            self.relayer_errors.is_empty(),
            "relayer errors: {:?}",
            self.relayer_errors
        );
        self.check_invariants();
    }

    /// Routes one sequencer output of chain `id` to the relayer, the operator and the harness.
    fn sequencer_output(&mut self, id: ChainId, out: SequencerOutput) {
        match out {
            SequencerOutput::BlockSealed(b) => {
                for r in &b.receipts {
                    if let Some(mid) = r.message_executed {
                        let fresh = self
                            .executed_ids
                            .entry(id)
                            .or_default()
                            .insert(mid, b.block.header.number)
                            .is_none();
                        assert!(fresh, "message {mid} executed twice on {id}");
                    }
                }
                let number = b.block.header.number;
                for r in &b.receipts {
                    self.relayer.tx_included(id, r.tx_hash, number);
                }
                let actions = self.relayer.handle(
                    self.now,
                    RelayerInput::SourceBlock {
                        block: b.block.clone(),
                        receipts: b.receipts.clone(),
                    },
                );
                self.queue_relayer(actions);
                let node = self.nodes.get_mut(&id).unwrap();
                node.blocks.insert(number, b.block.clone());
                let mut dests = LocalChains {
                    chains: &mut self.nodes,
                    now_ms: self.now,
                };
                let effects = self.relayer.drain(self.now, id, &mut dests);
                self.queue_relayer(effects);
            }
            SequencerOutput::BatchSealed(batch) => {
                // the chain node handed its operator the batch (a tampered copy if the test
                // says so); the harness keeps the real one
                let actions = self.relayer.handle(
                    self.now,
                    RelayerInput::BatchSealed {
                        header: batch.header.clone(),
                    },
                );
                self.queue_relayer(actions);
                let node = self.nodes.get_mut(&id).unwrap();
                node.batches.insert(batch.header.number, *batch);
            }
            SequencerOutput::TxDropped { hash, error } => {
                self.dropped.push((id, error));
                let mut dests = LocalChains {
                    chains: &mut self.nodes,
                    now_ms: self.now,
                };
                let effects = self.relayer.tx_dropped(id, hash, &mut dests);
                self.queue_relayer(effects);
            }
            SequencerOutput::ImportRejected { import, .. } => {
                let actions = self.relayer.import_refused(self.now, id, import);
                self.queue_relayer(actions);
            }
            _ => {}
        }
    }

    pub fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            self.step();
        }
    }

    /// The operator's loop: submit the calls its core asks for.
    fn operate(&mut self, id: ChainId) {
        let node = self.nodes.get_mut(&id).unwrap();
        if node.mode == OperatorMode::Stalled {
            return;
        }
        node.role
            .operator_mut()
            .set_prove_and_execute(node.mode == OperatorMode::Honest);
        let key = node.operator;
        let mut calls = node
            .role
            .operator_tick(&self.sl, &braid_driver::WatchedSources(self.relayer.core()));
        if node.tamper_extension {
            for call in &mut calls {
                if let SlCall::ExecuteBatch {
                    extension_proofs, ..
                } = call
                {
                    for p in extension_proofs {
                        if let Some(h) = p.hashes.first_mut() {
                            h.0[0] ^= 1;
                        }
                    }
                }
            }
        }
        let first = self.sl.nonce(&address_of(&key));
        for (nonce, call) in (first..).zip(calls) {
            self.submit_sl(&key, nonce, call);
        }
    }

    /// Extension proofs for a batch's pre-commit imports, from the relayer core.
    pub fn extension_proofs(
        &self,
        batch: &SealedBatch,
    ) -> Option<Vec<braid_merkle::ExtensionProof>> {
        batch
            .blocks
            .iter()
            .flat_map(|b| b.imports.iter())
            .filter(|i| i.kind == ImportKind::Precommit as u8)
            .map(|i| self.relayer.core().precommit_extension(i))
            .collect()
    }

    /// The relayer shell: carry out the queued imports and executions.
    fn relay(&mut self) {
        while !self.relay_queue.is_empty() {
            for effect in std::mem::take(&mut self.relay_queue) {
                match effect {
                    RelayerEffect::Import { dest, root, epoch } => {
                        let out = self.nodes.get_mut(&dest).unwrap().role.import(
                            root,
                            Some(epoch),
                            &self.sl,
                        );
                        for o in out {
                            self.chain_effect(dest, o);
                        }
                    }
                    RelayerEffect::Execute {
                        dest,
                        message,
                        proof,
                    } => {
                        let mut dests = LocalChains {
                            chains: &mut self.nodes,
                            now_ms: self.now,
                        };
                        let effects = self
                            .relayer
                            .execution_arrived(self.now, dest, message, proof, &mut dests);
                        self.queue_relayer(effects);
                    }
                    RelayerEffect::ExecuteDropped { id, .. } => {
                        let effects = self.relayer.execute_dropped(self.now, id);
                        self.queue_relayer(effects);
                    }
                    RelayerEffect::Postconfirm { .. } => {}
                    // lockstep: every block and SL block reaches the relayer in order, so it
                    // never has a gap to fill; a request would show up as a stuck message
                    RelayerEffect::Backfill { .. } | RelayerEffect::BackfillSl { .. } => {}
                    RelayerEffect::Error(e) => self.relayer_errors.push(e),
                }
            }
        }
    }

    /// Refreshes `tracked` from the relayer core (messages forgotten on a revert stay listed).
    fn refresh_tracked(&mut self) {
        for r in self.relayer.core().messages() {
            let executed = matches!(r.status, MessageStatus::Executed { .. });
            let view = Tracked {
                message: r.message.clone(),
                mode: r.mode,
                source_block: r.source_block,
                executed,
                status: r.status,
            };
            match self
                .tracked
                .iter_mut()
                .find(|t| t.message.id() == r.message.id())
            {
                Some(t) => *t = view,
                None => self.tracked.push(view),
            }
        }
    }

    /// Submits a transaction signed by hand with the relayer's key to `dest`.
    pub fn submit_relayer_tx(&mut self, dest: ChainId, raw: Bytes) {
        let out = self.nodes.get_mut(&dest).unwrap().role.submit_tx(raw);
        assert!(
            matches!(
                &out[..],
                [ChainEffect::Output(SequencerOutput::TxAccepted { .. })]
            ),
            "{out:?}"
        );
    }

    /// An execution of `message` signed by hand with the relayer's key, at its pending nonce.
    pub fn execute_tx(&mut self, dest: ChainId, message: &Message, proof: MessageProof) -> Bytes {
        let seq = self.nodes[&dest].seq();
        let from = relayer().address();
        let nonce = seq
            .mempool()
            .pending_nonce(&from, seq.state().account(&from).nonce);
        let input = execute_message_calldata(message, &proof);
        relayer()
            .call(dest, nonce, MESSENGER_ADDRESS, U256::ZERO, input, 500_000)
            .unwrap()
    }

    /// Invariants checked after every step.
    pub fn check_invariants(&self) {
        for (id, node) in &self.nodes {
            assert!(
                node.seq().state().value_conserved(),
                "value not conserved on chain {id}"
            );
        }
        assert_eq!(
            self.sl.total_value(),
            self.initial_sl_value,
            "SL value not conserved"
        );
        for (dest, ids) in &self.executed_ids {
            for id in ids.keys() {
                let src = &self.nodes[&id.source_chain];
                let leaf = src.seq().state().outbox().leaf(id.nonce);
                assert!(
                    leaf.is_some(),
                    "message {id} executed on {dest} does not exist at its source"
                );
            }
        }
    }

    pub fn events<'a>(
        &'a self,
        f: impl Fn(&SlEvent) -> bool + 'a,
    ) -> impl Iterator<Item = &'a SlEvent> + 'a {
        self.sl_events.iter().filter(move |e| f(e))
    }

    pub fn executed(&self, chain: ChainId, batch: BatchNumber) -> bool {
        self.executed_batches.contains(&(chain, batch))
    }
}
