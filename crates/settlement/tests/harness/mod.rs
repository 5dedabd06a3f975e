//! A plain test harness driving the real cores — sequencers, the settlement layer, an operator
//! per chain and a relayer — in lock step, with invariant checks after every step.
#![allow(clippy::unwrap_used, clippy::panic, dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_sol_types::{SolCall, SolEvent};
use braid_execution::{ExecutionError, TxSigner};
use braid_primitives::{
    BatchNumber, Block, ChainId, IMessenger, ImportKind, ImportedRoot, Message, MessageId,
    MessageProof, MESSENGER_ADDRESS, SETTLEMENT_LAYER_CHAIN_ID,
};
use braid_proof::{ProofSystem, ReExecution};
use braid_sequencer::{SealedBatch, Sequencer, SequencerConfig, SequencerInput, SequencerOutput};
use braid_settlement::{
    BatchStatus, ChainGenesis, SettlementLayer, SlCall, SlConfig, SlEvent, SlInput, SlTx,
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
    pub seq: Sequencer,
    pub operator: B256,
    pub mode: OperatorMode,
    /// Every batch the sequencer sealed, by number.
    pub batches: BTreeMap<BatchNumber, SealedBatch>,
    /// Every block, by number.
    pub blocks: BTreeMap<u64, Block>,
    /// Optional tampering of a batch before it is committed.
    pub tamper: Option<fn(&mut SealedBatch)>,
    /// Optional tampering of extension proofs before execution is requested.
    pub tamper_extension: bool,
    /// The sequencer ignores deposits from the SL.
    pub censor_deposits: bool,
}

/// A message the relayer is carrying.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub message: Message,
    pub mode: ImportKind,
    pub source_block: u64,
    pub executed: bool,
    pub submitted: Option<B256>,
}

pub struct Net {
    pub now: u64,
    pub sl: SettlementLayer,
    pub council: B256,
    pub nodes: BTreeMap<ChainId, Node>,
    pub tracked: Vec<Tracked>,
    pub relayer_pending: BTreeMap<ChainId, Vec<B256>>,
    pub imported: BTreeMap<ChainId, BTreeSet<(u8, ChainId, B256)>>,
    pub sl_events: Vec<SlEvent>,
    pub dropped: Vec<(ChainId, ExecutionError)>,
    pub executed_ids: BTreeMap<ChainId, BTreeSet<MessageId>>,
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
            tracked: vec![],
            relayer_pending: BTreeMap::new(),
            imported: BTreeMap::new(),
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
            let mut blocks = BTreeMap::new();
            blocks.insert(0, genesis.block);
            net.nodes.insert(
                *id,
                Node {
                    seq,
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
        net.sl_events.extend(events);
        net.initial_sl_value = net.sl.total_value();
        net
    }

    pub fn submit_sl(&mut self, key: &B256, nonce: u64, call: SlCall) {
        let tx = SlTx::sign(key, nonce, call).unwrap();
        let events = self.sl.handle(SlInput::Submit(Box::new(tx)));
        self.sl_events.extend(events);
    }

    /// Sends a message from `source` to `dest` in `mode` (alice → bob).
    pub fn send(&mut self, source: ChainId, dest: ChainId, value: u128, mode: ImportKind) {
        let node = self.nodes.get_mut(&source).unwrap();
        let nonce =
            node.seq.state().account(&alice().address()).nonce + node.seq.mempool().len() as u64;
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
        let out = node.seq.handle(SequencerInput::SubmitTx { raw });
        assert!(
            matches!(&out[..], [SequencerOutput::TxAccepted { .. }]),
            "{out:?}"
        );
    }

    /// Advances time by one block and runs every role once.
    pub fn step(&mut self) {
        self.now += BLOCK_MS;
        let ids: Vec<ChainId> = self.nodes.keys().copied().collect();
        for id in &ids {
            let now = self.now;
            let node = self.nodes.get_mut(id).unwrap();
            for out in node.seq.handle(SequencerInput::Tick { now_ms: now }) {
                match out {
                    SequencerOutput::BlockSealed(b) => {
                        for r in &b.receipts {
                            if let Some(id) = r.message_executed {
                                let dest = b.block.header.chainId;
                                let fresh = self.executed_ids.entry(dest).or_default().insert(id);
                                assert!(fresh, "message {id} executed twice on {dest}");
                                for t in self.tracked.iter_mut().filter(|t| t.message.id() == id) {
                                    t.executed = true;
                                }
                            }
                            for log in &r.logs {
                                if let Ok(ev) = IMessenger::MessageSent::decode_log_data(&log.data)
                                {
                                    let message = Message {
                                        sourceChain: b.block.header.chainId,
                                        nonce: ev.nonce,
                                        sender: r.from,
                                        destChain: ev.destChain,
                                        recipient: ev.recipient,
                                        value: ev.value,
                                        mode: ev.mode,
                                        payload: ev.payload.clone(),
                                    };
                                    assert_eq!(message.leaf_hash(), ev.leaf);
                                    let mode = ImportKind::try_from(ev.mode).unwrap();
                                    self.tracked.push(Tracked {
                                        message,
                                        mode,
                                        source_block: b.block.header.number,
                                        executed: false,
                                        submitted: None,
                                    });
                                }
                            }
                        }
                        node.blocks.insert(b.block.header.number, b.block.clone());
                    }
                    SequencerOutput::BatchSealed(batch) => {
                        node.batches.insert(batch.header.number, *batch);
                    }
                    SequencerOutput::TxDropped { error, .. } => self.dropped.push((*id, error)),
                    _ => {}
                }
            }
        }
        for id in &ids {
            self.operate(*id);
        }
        let events = self.sl.handle(SlInput::Tick { now_ms: self.now });
        for e in &events {
            if let SlEvent::DepositQueued(d) = e {
                if let Some(node) = self.nodes.get_mut(&d.chainId) {
                    if !node.censor_deposits {
                        node.seq.handle(SequencerInput::Deposit(d.clone()));
                    }
                }
            }
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
        self.sl_events.extend(events);
        if self.auto_relay {
            self.relay();
        }
        self.check_invariants();
    }

    pub fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            self.step();
        }
    }

    /// The operator's loop: take the next SL action for each of its batches.
    fn operate(&mut self, id: ChainId) {
        let node = &self.nodes[&id];
        if node.mode == OperatorMode::Stalled {
            return;
        }
        let key = node.operator;
        let mut nonce = self.sl.nonce(&address_of(&key));
        let mut calls = vec![];
        let Some(record) = self.sl.chain(id) else {
            return;
        };
        for (n, batch) in &node.batches {
            match self
                .sl
                .batch(id, *n)
                .map(|b| (b.status.clone(), b.execute_request.is_some()))
            {
                None if *n == record.last_committed + 1 => {
                    let mut batch = batch.clone();
                    if let Some(t) = node.tamper {
                        t(&mut batch);
                    }
                    let imports = batch
                        .blocks
                        .iter()
                        .flat_map(|b| b.imports.clone())
                        .collect();
                    calls.push(SlCall::CommitBatch {
                        header: batch.header,
                        imports,
                        blocks: batch.blocks,
                    });
                    break; // one commit per SL block keeps prove/execute ordering simple
                }
                Some((BatchStatus::Committed, _)) if node.mode == OperatorMode::Honest => {
                    calls.push(SlCall::ProveBatch {
                        chain_id: id,
                        batch: *n,
                        proof: Bytes::new(),
                    });
                }
                Some((BatchStatus::Proven, false)) if node.mode == OperatorMode::Honest => {
                    if let Some(proofs) = self.extension_proofs(batch) {
                        calls.push(SlCall::ExecuteBatch {
                            chain_id: id,
                            batch: *n,
                            extension_proofs: proofs,
                        });
                    }
                }
                _ => {}
            }
        }
        for call in calls {
            self.submit_sl(&key, nonce, call);
            nonce += 1;
        }
    }

    /// Extension proofs for a batch's pre-commit imports, once every source batch is sealed.
    pub fn extension_proofs(
        &self,
        batch: &SealedBatch,
    ) -> Option<Vec<braid_merkle::ExtensionProof>> {
        let mut proofs = vec![];
        for import in batch.blocks.iter().flat_map(|b| b.imports.iter()) {
            if import.kind != ImportKind::Precommit as u8 {
                continue;
            }
            let source = self.nodes.get(&import.sourceChain)?;
            let target = source.batches.values().find(|b| {
                b.header.firstBlock <= import.sourceHeight
                    && import.sourceHeight <= b.header.lastBlock
            })?;
            let mut p = source
                .seq
                .state()
                .outbox()
                .extension_proof(import.messageCount, target.header.messageCount)
                .ok()?;
            if self.nodes[&batch.header.chainId].tamper_extension {
                if let Some(h) = p.hashes.first_mut() {
                    h.0[0] ^= 1;
                }
            }
            proofs.push(p);
        }
        Some(proofs)
    }

    fn import(&mut self, dest: ChainId, import: ImportedRoot) -> bool {
        let key = (import.kind, import.sourceChain, import.root);
        let node = self.nodes.get_mut(&dest).unwrap();
        let done = node
            .seq
            .state()
            .imports()
            .any(|i| (i.kind, i.sourceChain, i.root) == key);
        if done {
            return true;
        }
        if self.imported.entry(dest).or_default().insert(key) {
            node.seq.handle(SequencerInput::Import(import));
        }
        false
    }

    /// The relayer: import the root each message's mode asks for, then execute it.
    fn relay(&mut self) {
        for i in 0..self.tracked.len() {
            let t = self.tracked[i].clone();
            if t.executed {
                continue;
            }
            if let Some(h) = t.submitted {
                let dest = &self.nodes[&t.message.destChain];
                if dest.seq.mempool().contains(&h) {
                    continue; // still pending
                }
            }
            let Some(proof) = self.prepare(&t) else {
                continue;
            };
            let dest = t.message.destChain;
            let raw = self.execute_tx(dest, &t.message, proof);
            let node = self.nodes.get_mut(&dest).unwrap();
            let hash = alloy_primitives::keccak256(&raw);
            node.seq.handle(SequencerInput::SubmitTx { raw });
            self.relayer_pending.entry(dest).or_default().push(hash);
            self.tracked[i].submitted = Some(hash);
        }
    }

    /// Imports the root `t` needs; returns the proof once the import is in the destination state.
    fn prepare(&mut self, t: &Tracked) -> Option<MessageProof> {
        let src = t.message.sourceChain;
        let dest = t.message.destChain;
        let (source_batch, sealed) = {
            let node = &self.nodes[&src];
            let b = node.batches.values().find(|b| {
                b.header.firstBlock <= t.source_block && t.source_block <= b.header.lastBlock
            });
            (b.map(|b| b.header.number), b.map(|b| b.header.clone()))
        };
        let outbox = self.nodes[&src].seq.state().outbox().clone();
        let single = |kind: ImportKind, root, size: u64| {
            let p = outbox.inclusion_proof(t.message.nonce, size).ok()?;
            Some(braid_execution::single_level_proof(kind, root, p))
        };
        match t.mode {
            ImportKind::Precommit => {
                let h = self.nodes[&src].blocks.get(&t.source_block)?.header.clone();
                let import = ImportedRoot {
                    kind: ImportKind::Precommit as u8,
                    sourceChain: src,
                    sourceHeight: h.number,
                    root: h.localRoot,
                    messageCount: h.messageCount,
                };
                if !self.import(dest, import) {
                    return None;
                }
                single(ImportKind::Precommit, h.localRoot, h.messageCount)
            }
            ImportKind::Commit => {
                let header = sealed?;
                self.sl.batch(src, header.number)?; // committed on the SL
                let import = ImportedRoot {
                    kind: ImportKind::Commit as u8,
                    sourceChain: src,
                    sourceHeight: header.number,
                    root: header.chainBatchRoot,
                    messageCount: header.messageCount,
                };
                if !self.import(dest, import) {
                    return None;
                }
                single(
                    ImportKind::Commit,
                    header.chainBatchRoot,
                    header.messageCount,
                )
            }
            ImportKind::Proof => {
                let n = source_batch?;
                let header = sealed?;
                let rec = self.sl.batch(src, n)?;
                rec.leaf_index?; // executed
                                 // import the MessageRoot once per size the relayer has seen
                let size = self.sl.message_tree().len();
                let (root, outer) = self.sl.batch_leaf_proof(src, n, size)?;
                let import = ImportedRoot {
                    kind: ImportKind::Proof as u8,
                    sourceChain: SETTLEMENT_LAYER_CHAIN_ID,
                    sourceHeight: self.sl.height(),
                    root,
                    messageCount: size,
                };
                if !self.import(dest, import) {
                    return None;
                }
                let inner = outbox
                    .inclusion_proof(t.message.nonce, header.messageCount)
                    .ok()?;
                Some(braid_execution::two_level_proof(
                    root,
                    n,
                    header.chainBatchRoot,
                    inner,
                    outer,
                ))
            }
        }
    }

    /// Submits a relayer transaction to `dest`, tracking it for nonce assignment.
    pub fn submit_relayer_tx(&mut self, dest: ChainId, raw: Bytes) {
        let hash = alloy_primitives::keccak256(&raw);
        let out = self
            .nodes
            .get_mut(&dest)
            .unwrap()
            .seq
            .handle(SequencerInput::SubmitTx { raw });
        assert!(
            matches!(&out[..], [SequencerOutput::TxAccepted { .. }]),
            "{out:?}"
        );
        self.relayer_pending.entry(dest).or_default().push(hash);
    }

    pub fn execute_tx(&mut self, dest: ChainId, message: &Message, proof: MessageProof) -> Bytes {
        let node = &self.nodes[&dest];
        let pending = self.relayer_pending.entry(dest).or_default();
        pending.retain(|h| node.seq.mempool().contains(h));
        let nonce = node.seq.state().account(&relayer().address()).nonce + pending.len() as u64;
        let input = IMessenger::executeMessageCall {
            message: message.clone(),
            proof,
        }
        .abi_encode();
        relayer()
            .call(
                dest,
                nonce,
                MESSENGER_ADDRESS,
                U256::ZERO,
                input.into(),
                500_000,
            )
            .unwrap()
    }

    /// Invariants checked after every step.
    pub fn check_invariants(&self) {
        for (id, node) in &self.nodes {
            assert!(
                node.seq.state().value_conserved(),
                "value not conserved on chain {id}"
            );
        }
        assert_eq!(
            self.sl.total_value(),
            self.initial_sl_value,
            "SL value not conserved"
        );
        for (dest, ids) in &self.executed_ids {
            for id in ids {
                let src = &self.nodes[&id.source_chain];
                let leaf = src.seq.state().outbox().leaf(id.nonce);
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
