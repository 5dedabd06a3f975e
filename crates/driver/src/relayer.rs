//! The relayer role: the relayer core plus what every shell must do around it.
//!
//! The core ([`braid_relayer::Relayer`]) decides *what* to import and execute. Around it, a
//! relayer needs rules the core cannot hold, because they depend on what the destinations
//! answer: when to give up waiting for an import or an execution, how to sign an execution
//! (which nonce), what to do when a destination's pool is full or does not hold the root the
//! proof is against yet, how to notice an execution that vanished from a pool, how to clear a
//! nonce gap a failed execution left, what a restart must re-derive. [`RelayerRole`] holds
//! them once; the simulator, the devnet and the relayer process answer its questions about
//! destinations through [`Destinations`] (the in-process chains, or JSON-RPC).
//!
//! Execution has two halves, so that a shell with a network between relayer and destination
//! (the simulator) can put it in between: [`RelayerEffect::Execute`] is the relayer's decision,
//! [`RelayerRole::execution_arrived`] is its submission at the destination (immediately after,
//! in a live shell). What the submission learns comes back as
//! [`RelayerEffect::ExecuteDropped`], which the shell routes to
//! [`RelayerRole::execute_dropped`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::{ChainEffect, ChainRole};
use alloy_primitives::{Address, Bytes, B256, U256};
use braid_execution::{ImportKey, TxSigner};
use braid_primitives::{
    BlockNumber, ChainId, ImportedRoot, Message, MessageId, MessageProof, MESSENGER_ADDRESS,
};
use braid_relayer::{
    execute_message_calldata, Fault, MessageStatus, Relayer, RelayerAction, RelayerError,
    RelayerInput,
};
use braid_settlement::SlEvent;

/// Why a destination refused an execution transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitRefusal {
    /// The pool is full, for the sender or overall: back-pressure, the same transaction may be
    /// taken once blocks drained the pool.
    PoolFull(String),
    /// Any other refusal (bad nonce, unknown chain, transport error, ...).
    Other(String),
}

impl std::fmt::Display for SubmitRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubmitRefusal::PoolFull(e) => write!(f, "pool full: {e}"),
            SubmitRefusal::Other(e) => f.write_str(e),
        }
    }
}

/// What the relayer asks of its destinations: the in-process chains of the simulator and the
/// devnet, or JSON-RPC endpoints for the relayer process.
pub trait Destinations {
    /// Whether `dest` answers at all (a crashed node does not).
    fn up(&self, _dest: ChainId) -> bool {
        true
    }
    /// The next nonce of `from` on `dest` counting its pooled transactions
    /// (`eth_getTransactionCount(from, "pending")`).
    fn pending_nonce(&self, dest: ChainId, from: &Address) -> Option<u64>;
    /// A nonce gap of `from` on `dest`: the next nonce the chain will take from it when later
    /// nonces wait in the pool behind it. `None` when there is none (or it cannot be seen).
    fn nonce_gap(&self, _dest: ChainId, _from: &Address) -> Option<u64> {
        None
    }
    /// Whether `dest` holds the root `proof` is against, or has it queued for import (imports
    /// are applied at the start of a block, before its transactions).
    fn holds_root(&self, dest: ChainId, message: &Message, proof: &MessageProof) -> bool;
    /// Whether `dest` already executed message `id` (`isExecuted`).
    fn executed(&self, dest: ChainId, id: &MessageId) -> bool;
    /// Whether transaction `hash` waits in `dest`'s pool.
    fn pooled(&self, dest: ChainId, hash: &B256) -> bool;
    /// Submits a signed transaction to `dest`: its hash, and the pooled transaction it replaced
    /// (same sender and nonce), if any.
    fn submit(&mut self, dest: ChainId, raw: Bytes) -> Result<(B256, Option<B256>), SubmitRefusal>;
    /// Takes transaction `hash` out of `dest`'s pool, if the shell can (an in-process chain):
    /// its nonce. A shell that cannot returns `None`, and the transaction is replaced instead.
    fn evict(&mut self, _dest: ChainId, _hash: &B256) -> Option<u64> {
        None
    }
}

/// What the relayer role asks its shell to do.
// Short-lived values handed to the shell; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayerEffect {
    /// Queue `root` as an import on `dest` (`braid_importRoot(root, epoch)`): `epoch` is the
    /// source's revert epoch the relayer knows, so the destination can refuse a root a revert
    /// it has not seen yet voided.
    Import {
        /// The destination.
        dest: ChainId,
        /// The root.
        root: ImportedRoot,
        /// The source's revert epoch ([`Relayer::source_epoch`]).
        epoch: u64,
    },
    /// Execute `message` on `dest`: hand it to [`RelayerRole::execution_arrived`] at the
    /// destination (at once, in a shell without a network model).
    Execute {
        /// The destination.
        dest: ChainId,
        /// The message.
        message: Message,
        /// Its proof.
        proof: MessageProof,
    },
    /// The submission of an execution failed at `dest` (or its transaction left the pool
    /// without being included): route to [`RelayerRole::execute_dropped`].
    ExecuteDropped {
        /// The destination that reported it.
        dest: ChainId,
        /// The message.
        id: MessageId,
    },
    /// Send `chain`'s canonical blocks from `from` (and the batch headers ending there or
    /// later) back to the relayer ([`RelayerAction::Backfill`]).
    Backfill {
        /// The chain.
        chain: ChainId,
        /// The first block wanted.
        from: BlockNumber,
    },
    /// Send the events of SL blocks `from..=to` again ([`RelayerAction::BackfillSl`]).
    BackfillSl {
        /// The first missing SL block.
        from: u64,
        /// The last missing SL block.
        to: u64,
    },
    /// Post the quorum certificate of `chain`'s block `height` to the SL.
    Postconfirm {
        /// The source chain.
        chain: ChainId,
        /// The certified block.
        height: BlockNumber,
    },
    /// The core rejected an input or found an inconsistency (for logs and reports).
    Error(RelayerError),
}

/// What the relayer role did, for reports and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayerCounters {
    /// Executions re-requested after a drop report or a timeout.
    pub execute_retries: u64,
    /// Imports re-requested after a refusal or a timeout.
    pub import_retries: u64,
    /// Execution transactions the destination dropped or refused.
    pub executions_dropped: u64,
    /// Executions not sent because the destination had already executed the message (a
    /// restarted relayer re-deriving its work).
    pub executions_skipped: u64,
    /// No-op transactions sent to fill a nonce gap a failed execution left.
    pub nonce_gaps_filled: u64,
    /// Executions a roll-back of their destination put back into its pool, withdrawn at once.
    pub void_executions_replaced: u64,
    /// Backfill requests of the core.
    pub backfills: u64,
    /// SL backfill requests of the core.
    pub sl_backfills: u64,
    /// Error actions of the core.
    pub errors: u64,
    /// Messages the core found undeliverable through the sender's fault.
    pub undeliverable_sender_fault: u64,
    /// Messages the core found undeliverable through the system's fault.
    pub undeliverable_system: u64,
}

/// An execution waiting at its destination: for room in the pool, or for the root its proof
/// is against (with when it was handed over).
#[derive(Debug, Clone)]
struct Waiting {
    message: Message,
    proof: MessageProof,
    since_ms: u64,
}

/// The relayer, wired: its core plus deadlines, execution submission and restart rules.
#[derive(Debug)]
pub struct RelayerRole {
    core: Relayer,
    key: TxSigner,
    retry_ms: u64,
    clock_at: Option<u64>,
    /// When the role gives up waiting for an execution (and asks the core again).
    execute_deadline: BTreeMap<MessageId, u64>,
    /// When the role gives up waiting for an import.
    import_deadline: BTreeMap<(ChainId, ImportKey), (ImportedRoot, u64)>,
    /// Execution transactions in destination pools: (dest, hash) → (message, leaf).
    in_pool: BTreeMap<(ChainId, B256), (MessageId, B256)>,
    /// The message and proof of each execution the role submitted, while it may be pooled: a
    /// roll-back of the destination can void the root the proof is against.
    pooled_proofs: BTreeMap<(ChainId, B256), (Message, MessageProof)>,
    /// Execution transactions included in a destination block not final yet:
    /// (dest, hash) → (message, leaf, block). A roll-back of the destination re-pools them.
    included: BTreeMap<(ChainId, B256), (MessageId, B256, BlockNumber)>,
    /// Executions reported dropped because a roll-back of their destination withdrew them:
    /// when the report comes back, the core retries them without a backoff.
    undone: BTreeSet<MessageId>,
    /// Per destination, executions waiting for pool room or their root.
    backlog: BTreeMap<ChainId, VecDeque<Waiting>>,
    counters: RelayerCounters,
}

impl RelayerRole {
    /// A relayer around `core`, paying with `key`; it waits `retry_ms` for an import or an
    /// execution before asking the core again.
    pub fn new(core: Relayer, key: TxSigner, retry_ms: u64) -> Self {
        Self {
            core,
            key,
            retry_ms: retry_ms.max(1),
            clock_at: None,
            execute_deadline: BTreeMap::new(),
            import_deadline: BTreeMap::new(),
            in_pool: BTreeMap::new(),
            pooled_proofs: BTreeMap::new(),
            included: BTreeMap::new(),
            undone: BTreeSet::new(),
            backlog: BTreeMap::new(),
            counters: RelayerCounters::default(),
        }
    }

    /// The core, for views (message status, trees, extension proofs).
    pub fn core(&self) -> &Relayer {
        &self.core
    }

    /// The address the relayer pays from.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// What the role did so far.
    pub fn counters(&self) -> &RelayerCounters {
        &self.counters
    }

    /// How long the role waits for an import or an execution.
    pub fn retry_ms(&self) -> u64 {
        self.retry_ms
    }

    /// Tells the core the time, once per instant (its backoffs run on it).
    fn clock(&mut self, now_ms: u64) -> Vec<RelayerEffect> {
        if self.clock_at == Some(now_ms) {
            return vec![];
        }
        self.clock_at = Some(now_ms);
        let actions = self.core.handle(RelayerInput::Tick { now_ms });
        self.effects(now_ms, actions)
    }

    /// Feeds the core an input at `now_ms`. A source block clears the deadlines of the imports
    /// and executions it includes.
    pub fn handle(&mut self, now_ms: u64, input: RelayerInput) -> Vec<RelayerEffect> {
        if let RelayerInput::SourceBlock { block, receipts } = &input {
            let chain = block.header.chainId;
            for i in &block.imports {
                if let Ok(key) = ImportKey::of(i) {
                    self.import_deadline.remove(&(chain, key));
                }
            }
            for r in receipts {
                if let Some(mid) = r.message_executed {
                    self.execute_deadline.remove(&mid);
                }
            }
        }
        let mut out = self.clock(now_ms);
        let actions = self.core.handle(input);
        out.extend(self.effects(now_ms, actions));
        out
    }

    /// Feeds the core one SL block's events.
    pub fn observe_sl_block(&mut self, now_ms: u64, events: &[SlEvent]) -> Vec<RelayerEffect> {
        let mut out = self.clock(now_ms);
        let actions = self.core.observe_sl_block(events);
        out.extend(self.effects(now_ms, actions));
        out
    }

    /// Feeds the core one SL event (a shell that reads the SL's events by index, not by block).
    pub fn observe_sl(&mut self, now_ms: u64, event: &SlEvent) -> Vec<RelayerEffect> {
        let mut out = self.clock(now_ms);
        let actions = self.core.observe_sl(event);
        out.extend(self.effects(now_ms, actions));
        out
    }

    /// `dest` refused the import of `root` (its node, or its sequencer): the core asks again.
    pub fn import_refused(
        &mut self,
        now_ms: u64,
        dest: ChainId,
        root: ImportedRoot,
    ) -> Vec<RelayerEffect> {
        if let Ok(key) = ImportKey::of(&root) {
            self.import_deadline.remove(&(dest, key));
        }
        self.counters.import_retries += 1;
        let mut out = self.clock(now_ms);
        let actions = self.core.handle(RelayerInput::ImportDropped { dest, root });
        out.extend(self.effects(now_ms, actions));
        out
    }

    /// The execution of `id` was refused or dropped: the core executes it again (after its
    /// backoff, or at once if a roll-back of its destination withdrew it) if it still waits
    /// for it.
    pub fn execute_dropped(&mut self, now_ms: u64, id: MessageId) -> Vec<RelayerEffect> {
        self.execute_deadline.remove(&id);
        let undone = self.undone.remove(&id);
        if self.core.status(&id) != Some(MessageStatus::Submitted) {
            return vec![];
        }
        self.counters.execute_retries += 1;
        let mut out = self.clock(now_ms);
        let input = if undone {
            RelayerInput::ExecuteUndone { id }
        } else {
            RelayerInput::ExecuteDropped { id }
        };
        let actions = self.core.handle(input);
        out.extend(self.effects(now_ms, actions));
        out
    }

    /// Time passed: requests not answered in time count as dropped (a network may have lost
    /// them), except executions still waiting in their destination's pool or in the backlog,
    /// which are waited for (a duplicate could only fail and leave a nonce gap).
    pub fn tick(&mut self, now_ms: u64, dests: &impl Destinations) -> Vec<RelayerEffect> {
        let mut out = self.clock(now_ms);
        let expired: BTreeSet<MessageId> = self
            .execute_deadline
            .iter()
            .filter(|(_, at)| **at <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        let pooled: BTreeSet<MessageId> = self
            .in_pool
            .iter()
            .filter(|((dest, hash), (mid, _))| expired.contains(mid) && dests.pooled(*dest, hash))
            .map(|(_, (mid, _))| *mid)
            .chain(
                self.backlog
                    .values()
                    .flatten()
                    .map(|w| w.message.id())
                    .filter(|id| expired.contains(id)),
            )
            .collect();
        let later = now_ms + self.retry_ms;
        // every execution the core has in flight is waited for with a deadline: one whose
        // deadline went with a destination block later rolled back (its execution seen, then
        // undone) would otherwise wait forever
        let unwatched: Vec<MessageId> = self
            .core
            .messages()
            .filter(|r| r.status == MessageStatus::Submitted)
            .map(|r| r.message.id())
            .filter(|id| !self.execute_deadline.contains_key(id))
            .collect();
        for id in unwatched {
            self.execute_deadline.insert(id, later);
        }
        for id in expired {
            if pooled.contains(&id) {
                self.execute_deadline.insert(id, later);
            } else {
                out.extend(self.execute_dropped(now_ms, id));
            }
        }
        let expired: Vec<(ChainId, ImportedRoot)> = self
            .import_deadline
            .iter()
            .filter(|(_, (_, at))| *at <= now_ms)
            .map(|((dest, _), (root, _))| (*dest, root.clone()))
            .collect();
        for (dest, root) in expired {
            out.extend(self.import_refused(now_ms, dest, root));
        }
        out
    }

    /// After a restart whose replay rebuilt the core: the pools may have been lost with the
    /// processes, so every execution the core had handed out is asked again (those the
    /// destination already executed are skipped at submission), except those whose
    /// transaction came back into its destination's pool ([`RelayerRole::adopt_pooled`]).
    pub fn resume(&mut self, now_ms: u64) -> Vec<RelayerEffect> {
        let pooled: BTreeSet<MessageId> = self.in_pool.values().map(|(id, _)| *id).collect();
        let stale: Vec<MessageId> = self
            .core
            .messages()
            .filter(|r| r.status == MessageStatus::Submitted)
            .map(|r| r.message.id())
            .filter(|id| !pooled.contains(id))
            .collect();
        let mut out = vec![];
        for id in stale {
            out.extend(self.execute_dropped(now_ms, id));
        }
        out
    }

    /// After a restart, `dest`'s pool holds again (from its journal) the relayer's transaction
    /// `hash` executing `message`: it is waited for like one just submitted, and
    /// [`RelayerRole::resume`] does not send the execution again.
    pub fn adopt_pooled(&mut self, dest: ChainId, hash: B256, message: &Message) {
        self.in_pool
            .insert((dest, hash), (message.id(), message.leaf_hash()));
    }

    /// Turns core actions into effects, recording deadlines and counts.
    fn effects(&mut self, now_ms: u64, actions: Vec<RelayerAction>) -> Vec<RelayerEffect> {
        let deadline = now_ms + self.retry_ms;
        let mut out = Vec::with_capacity(actions.len());
        for action in actions {
            out.push(match action {
                RelayerAction::Import { dest, root } => {
                    if let Ok(key) = ImportKey::of(&root) {
                        self.import_deadline
                            .insert((dest, key), (root.clone(), deadline));
                    }
                    let epoch = self.core.source_epoch(root.sourceChain);
                    RelayerEffect::Import { dest, root, epoch }
                }
                RelayerAction::Execute {
                    dest,
                    message,
                    proof,
                } => {
                    self.execute_deadline.insert(message.id(), deadline);
                    RelayerEffect::Execute {
                        dest,
                        message,
                        proof,
                    }
                }
                RelayerAction::Backfill { chain, from } => {
                    self.counters.backfills += 1;
                    RelayerEffect::Backfill { chain, from }
                }
                RelayerAction::BackfillSl {
                    from_height,
                    to_height,
                } => {
                    self.counters.sl_backfills += 1;
                    RelayerEffect::BackfillSl {
                        from: from_height,
                        to: to_height,
                    }
                }
                RelayerAction::Postconfirm { chain, height } => {
                    RelayerEffect::Postconfirm { chain, height }
                }
                RelayerAction::Error(e) => {
                    self.counters.errors += 1;
                    if let RelayerError::Undeliverable { reason, .. } = &e {
                        match reason.fault() {
                            Fault::Sender => self.counters.undeliverable_sender_fault += 1,
                            Fault::System => self.counters.undeliverable_system += 1,
                        }
                    }
                    RelayerEffect::Error(e)
                }
            });
        }
        out
    }

    // ----- the destination half -----

    /// An execution the role decided ([`RelayerEffect::Execute`]) reached its destination: it
    /// waits its turn behind executions the pool refused as full, and is submitted once the
    /// destination holds its root.
    pub fn execution_arrived(
        &mut self,
        now_ms: u64,
        dest: ChainId,
        message: Message,
        proof: MessageProof,
        dests: &mut impl Destinations,
    ) -> Vec<RelayerEffect> {
        self.backlog.entry(dest).or_default().push_back(Waiting {
            message,
            proof,
            since_ms: now_ms,
        });
        self.drain(now_ms, dest, dests)
    }

    /// Submits the executions waiting for `dest`, in order, while its pool takes them: the
    /// role caps what it has in flight per destination (the pool refused a burst as full) and
    /// does not send an execution before the root it needs is on the destination or queued
    /// there (it would fail and leave a nonce gap). One whose root does not come within two
    /// retry periods is reported dropped, and the core decides again. A nonce gap of the
    /// relayer's in `dest`'s pool is filled first. Call it after each block of `dest`.
    pub fn drain(
        &mut self,
        now_ms: u64,
        dest: ChainId,
        dests: &mut impl Destinations,
    ) -> Vec<RelayerEffect> {
        if !dests.up(dest) {
            return vec![];
        }
        // whatever removed one of the relayer's pooled transactions (a failure in a block the
        // role did not hear of, a roll-back, a crash), the ones behind it wait for its nonce
        let mut out = self.fill_nonce_gap(dest, dests);
        let Some(mut queue) = self.backlog.remove(&dest) else {
            return out;
        };
        let give_up = self.retry_ms.saturating_mul(2);
        let mut keep = VecDeque::new();
        while let Some(w) = queue.pop_front() {
            let id = w.message.id();
            if dests.executed(dest, &id) {
                // a restarted relayer re-deriving its work, or a duplicate: the execution the
                // destination holds reaches the core with its block
                self.counters.executions_skipped += 1;
                continue;
            }
            if !dests.holds_root(dest, &w.message, &w.proof) {
                if now_ms.saturating_sub(w.since_ms) >= give_up {
                    self.execute_deadline.remove(&id);
                    self.counters.executions_dropped += 1;
                    out.push(RelayerEffect::ExecuteDropped { dest, id });
                } else {
                    keep.push_back(w);
                }
                continue;
            }
            match self.submit_execution(dest, &w.message, &w.proof, dests) {
                Ok(replaced) => out.extend(replaced),
                Err(SubmitRefusal::PoolFull(_)) => {
                    keep.push_back(w);
                    keep.append(&mut queue);
                    break;
                }
                Err(SubmitRefusal::Other(_)) => {
                    self.counters.executions_dropped += 1;
                    out.push(RelayerEffect::ExecuteDropped { dest, id });
                }
            }
        }
        if !keep.is_empty() {
            self.backlog.insert(dest, keep);
        }
        out
    }

    /// Signs and submits `executeMessage` on `dest` at the relayer's pending nonce. A
    /// transaction it replaced is reported dropped.
    fn submit_execution(
        &mut self,
        dest: ChainId,
        message: &Message,
        proof: &MessageProof,
        dests: &mut impl Destinations,
    ) -> Result<Option<RelayerEffect>, SubmitRefusal> {
        let from = self.key.address();
        let nonce = dests
            .pending_nonce(dest, &from)
            .ok_or_else(|| SubmitRefusal::Other(format!("no nonce for chain {dest}")))?;
        let input = execute_message_calldata(message, proof);
        let raw = self
            .key
            .call(dest, nonce, MESSENGER_ADDRESS, U256::ZERO, input, 1_000_000)
            .map_err(|e| SubmitRefusal::Other(e.to_string()))?;
        let (hash, replaced) = dests.submit(dest, raw)?;
        self.in_pool
            .insert((dest, hash), (message.id(), message.leaf_hash()));
        self.pooled_proofs
            .insert((dest, hash), (message.clone(), proof.clone()));
        Ok(replaced
            .and_then(|h| self.in_pool.remove(&(dest, h)))
            .map(|(old, _)| {
                self.counters.executions_dropped += 1;
                RelayerEffect::ExecuteDropped { dest, id: old }
            }))
    }

    /// `dest` included the relayer's transaction `hash` in `block`: the leaf of the message it
    /// executed, if it was one of the relayer's executions.
    pub fn tx_included(&mut self, dest: ChainId, hash: B256, block: BlockNumber) -> Option<B256> {
        self.pooled_proofs.remove(&(dest, hash));
        let leaf = match self.in_pool.remove(&(dest, hash)) {
            Some((mid, leaf)) => {
                self.included.insert((dest, hash), (mid, leaf, block));
                leaf
            }
            // re-pooled by a roll-back and included again
            None => {
                let (mid, leaf, _) = *self.included.get(&(dest, hash))?;
                self.included.insert((dest, hash), (mid, leaf, block));
                leaf
            }
        };
        Some(leaf)
    }

    /// `dest` dropped transaction `hash` from a block (it failed): if it was one of the
    /// relayer's executions, the core is told, and a nonce gap it left is filled with a no-op.
    pub fn tx_dropped(
        &mut self,
        dest: ChainId,
        hash: B256,
        dests: &mut impl Destinations,
    ) -> Vec<RelayerEffect> {
        self.pooled_proofs.remove(&(dest, hash));
        let known = self
            .in_pool
            .remove(&(dest, hash))
            .map(|(mid, _)| mid)
            .or_else(|| self.included.remove(&(dest, hash)).map(|(mid, _, _)| mid));
        let Some(id) = known else {
            return vec![];
        };
        self.counters.executions_dropped += 1;
        let mut out = vec![RelayerEffect::ExecuteDropped { dest, id }];
        out.extend(self.fill_nonce_gap(dest, dests));
        out
    }

    /// A failed relayer transaction left a nonce gap on `dest` (its later transactions wait
    /// behind it): fill it with a no-op self-transfer so they can go in. An execution the no-op
    /// displaced (a full queue gives up its highest nonce) is reported dropped.
    fn fill_nonce_gap(
        &mut self,
        dest: ChainId,
        dests: &mut impl Destinations,
    ) -> Vec<RelayerEffect> {
        let from = self.key.address();
        let Some(gap) = dests.nonce_gap(dest, &from) else {
            return vec![];
        };
        let filler = self
            .key
            .call(dest, gap, from, U256::ZERO, Bytes::new(), 21_000);
        if let Ok(raw) = filler {
            if let Ok((_, displaced)) = dests.submit(dest, raw) {
                self.counters.nonce_gaps_filled += 1;
                return displaced
                    .and_then(|h| self.displaced(dest, h))
                    .into_iter()
                    .collect();
            }
        }
        vec![]
    }

    /// `dest` rolled back: the relayer's executions of the discarded blocks are back in its
    /// pool, with proofs against roots the re-sequenced chain may no longer import, or for
    /// messages a fresh execution lands first — each would fail in a block of its own and hold
    /// the relayer's later transactions behind its nonce. Withdraw them at once (a no-op at the
    /// same nonce) and let the core execute again what still needs it. Executions still waiting
    /// in the pool whose root the roll-back voided are withdrawn the same way.
    pub fn dest_rolled_back(
        &mut self,
        dest: ChainId,
        dests: &mut impl Destinations,
    ) -> Vec<RelayerEffect> {
        let repooled: Vec<(B256, MessageId)> = self
            .included
            .iter()
            .filter(|((c, h), _)| *c == dest && dests.pooled(dest, h))
            .map(|((_, h), (mid, _, _))| (*h, *mid))
            .collect();
        // executions waiting in the pool (never included) whose root the roll-back voided:
        // each would fail in a block of its own, the same way
        self.pooled_proofs
            .retain(|(c, h), _| *c != dest || self.in_pool.contains_key(&(*c, *h)));
        let void: Vec<(B256, MessageId)> = self
            .pooled_proofs
            .iter()
            .filter(|((c, h), (m, p))| {
                *c == dest && dests.pooled(dest, h) && !dests.holds_root(dest, m, p)
            })
            .filter_map(|((_, h), _)| Some((*h, self.in_pool.get(&(dest, *h))?.0)))
            .collect();
        let mut out = vec![];
        for (hash, id) in repooled {
            self.included.remove(&(dest, hash));
            self.withdraw(dest, hash, id, dests, &mut out);
        }
        for (hash, id) in void {
            if self.in_pool.remove(&(dest, hash)).is_none() {
                continue; // displaced by a no-op above, and reported then
            }
            self.pooled_proofs.remove(&(dest, hash));
            self.withdraw(dest, hash, id, dests, &mut out);
        }
        out
    }

    /// Takes the relayer's transaction `hash` (executing `id`) out of `dest`'s pool, puts a
    /// no-op at its nonce, and reports the execution dropped.
    fn withdraw(
        &mut self,
        dest: ChainId,
        hash: B256,
        id: MessageId,
        dests: &mut impl Destinations,
        out: &mut Vec<RelayerEffect>,
    ) {
        let from = self.key.address();
        // not pooled any more: the no-op of an earlier withdrawal displaced it (a sender's
        // queue over its limit, as a roll-back leaves it, gives up its highest nonce for a
        // transaction below). Gone all the same: the core must execute it again
        if let Some(nonce) = dests.evict(dest, &hash) {
            let noop = self
                .key
                .call(dest, nonce, from, U256::ZERO, Bytes::new(), 21_000);
            if let Ok(raw) = noop {
                if let Ok((_, displaced)) = dests.submit(dest, raw) {
                    out.extend(displaced.and_then(|h| self.displaced(dest, h)));
                }
            }
        }
        self.counters.void_executions_replaced += 1;
        self.counters.executions_dropped += 1;
        self.undone.insert(id);
        out.push(RelayerEffect::ExecuteDropped { dest, id });
    }

    /// A no-op of the relayer's displaced its transaction `hash` from `dest`'s pool (the
    /// sender's highest nonce, its queue being full): an execution still waiting there is
    /// reported dropped. (One a roll-back re-pooled is reported when its turn to be withdrawn
    /// comes.)
    fn displaced(&mut self, dest: ChainId, hash: B256) -> Option<RelayerEffect> {
        self.pooled_proofs.remove(&(dest, hash));
        let (id, _) = self.in_pool.remove(&(dest, hash))?;
        self.counters.executions_dropped += 1;
        Some(RelayerEffect::ExecuteDropped { dest, id })
    }

    /// `dest`'s blocks up to `last_block` are final: their executions can no longer be
    /// re-pooled.
    pub fn dest_final(&mut self, dest: ChainId, last_block: BlockNumber) {
        self.included
            .retain(|(c, _), (_, _, b)| *c != dest || *b > last_block);
    }

    /// `dest` restarted and lost its pool: the role forgets what it had there (the deadlines
    /// notice what is missing). Not its executions already included: the restarted node still
    /// holds their blocks, and a later roll-back re-pools them ([`RelayerRole::dest_rolled_back`]
    /// withdraws them then).
    pub fn dest_restarted(&mut self, dest: ChainId) {
        self.in_pool.retain(|(c, _), _| *c != dest);
        self.pooled_proofs.retain(|(c, _), _| *c != dest);
    }

    /// Whether message `id` waits at a destination (in the backlog), for status reports.
    pub fn waiting_at_destination(&self, id: &MessageId) -> bool {
        self.backlog
            .values()
            .flatten()
            .any(|w| w.message.id() == *id)
    }
}

/// A chain node held in process (the simulator's and the devnet's), as a relayer destination.
pub trait LocalChain {
    /// Its chain role.
    fn chain_role(&self) -> &ChainRole;
    /// Its chain role, to submit to.
    fn chain_role_mut(&mut self) -> &mut ChainRole;
    /// Whether it answers at `now_ms` (a crashed node does not).
    fn answers(&self, _now_ms: u64) -> bool {
        true
    }
    /// Submits a signed transaction to its pool ([`submit_to_role`]). A shell that keeps its
    /// pool on disk (the devnet's journal) records an accepted one here.
    fn submit_pooled(&mut self, raw: Bytes) -> Result<(B256, Option<B256>), SubmitRefusal> {
        submit_to_role(self.chain_role_mut(), raw)
    }
    /// Takes transaction `hash` out of its pool: its nonce. A shell that keeps its pool on
    /// disk forgets it there too.
    fn evict_pooled(&mut self, hash: &B256) -> Option<u64> {
        self.chain_role_mut()
            .seq_mut()
            .evict(hash)
            .map(|tx| tx.nonce())
    }
}

/// Submits a signed transaction to `role`'s pool: its hash, and the pooled transaction it
/// replaced (same sender and nonce), if any; a full pool is [`SubmitRefusal::PoolFull`].
pub fn submit_to_role(
    role: &mut ChainRole,
    raw: Bytes,
) -> Result<(B256, Option<B256>), SubmitRefusal> {
    use braid_sequencer::{MempoolError, SequencerError, SequencerOutput};
    match role.submit_tx(raw).pop() {
        Some(ChainEffect::Output(SequencerOutput::TxAccepted { hash, replaced })) => {
            Ok((hash, replaced))
        }
        Some(ChainEffect::Output(SequencerOutput::TxRejected {
            error:
                error @ SequencerError::Mempool(
                    MempoolError::SenderFull { .. } | MempoolError::PoolFull { .. },
                ),
            ..
        })) => Err(SubmitRefusal::PoolFull(error.to_string())),
        Some(ChainEffect::Output(SequencerOutput::TxRejected { error, .. })) => {
            Err(SubmitRefusal::Other(error.to_string()))
        }
        other => Err(SubmitRefusal::Other(format!(
            "unexpected sequencer answer {other:?}"
        ))),
    }
}

impl LocalChain for ChainRole {
    fn chain_role(&self) -> &ChainRole {
        self
    }
    fn chain_role_mut(&mut self) -> &mut ChainRole {
        self
    }
}

/// In-process chains as the relayer's [`Destinations`], at time `now_ms`.
pub struct LocalChains<'a, N> {
    /// The chains.
    pub chains: &'a mut BTreeMap<ChainId, N>,
    /// Now.
    pub now_ms: u64,
}

impl<N: LocalChain> LocalChains<'_, N> {
    fn seq(&self, dest: ChainId) -> Option<&braid_sequencer::Sequencer> {
        self.chains.get(&dest).map(|n| n.chain_role().seq())
    }
}

impl<N: LocalChain> Destinations for LocalChains<'_, N> {
    fn up(&self, dest: ChainId) -> bool {
        self.chains
            .get(&dest)
            .is_some_and(|n| n.answers(self.now_ms))
    }

    fn pending_nonce(&self, dest: ChainId, from: &Address) -> Option<u64> {
        let seq = self.seq(dest)?;
        let account = seq.state().account(from).nonce;
        Some(seq.mempool().pending_nonce(from, account))
    }

    fn nonce_gap(&self, dest: ChainId, from: &Address) -> Option<u64> {
        let seq = self.seq(dest)?;
        let account = seq.state().account(from).nonce;
        let gap = seq.mempool().pending_nonce(from, account);
        seq.mempool().has_nonce_above(from, gap).then_some(gap)
    }

    fn holds_root(&self, dest: ChainId, message: &Message, proof: &MessageProof) -> bool {
        let Some(seq) = self.seq(dest) else {
            return false;
        };
        let Ok(kind) = braid_primitives::ImportKind::try_from(proof.kind) else {
            return true; // the chain refuses it with its reason
        };
        [
            message.sourceChain,
            braid_primitives::SETTLEMENT_LAYER_CHAIN_ID,
        ]
        .into_iter()
        .any(|source_chain| {
            seq.state()
                .imported(&ImportKey {
                    kind,
                    source_chain,
                    root: proof.root,
                })
                .is_some()
        }) || seq
            .pending_imports()
            .iter()
            .any(|i| i.root == proof.root && i.kind == proof.kind)
    }

    fn executed(&self, dest: ChainId, id: &MessageId) -> bool {
        self.seq(dest).is_some_and(|s| s.state().is_executed(id))
    }

    fn pooled(&self, dest: ChainId, hash: &B256) -> bool {
        self.seq(dest).is_some_and(|s| s.mempool().contains(hash))
    }

    fn submit(&mut self, dest: ChainId, raw: Bytes) -> Result<(B256, Option<B256>), SubmitRefusal> {
        self.chains
            .get_mut(&dest)
            .ok_or_else(|| SubmitRefusal::Other(format!("unknown chain {dest}")))?
            .submit_pooled(raw)
    }

    fn evict(&mut self, dest: ChainId, hash: &B256) -> Option<u64> {
        self.chains.get_mut(&dest)?.evict_pooled(hash)
    }
}
