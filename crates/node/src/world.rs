//! The devnet's world: the settlement layer, every chain, their operators and the relayer, all
//! real cores, persisted to redb, stepped with the wall clock by the async shell.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use braid_driver::{
    route, submit_to_role, ChainEffect, ChainRole, LocalChain, LocalChains, RelayerEffect,
    RelayerRole, RollbackCause, SubmitRefusal, WatchedSources,
};
use braid_execution::{RecoveredTx, TxSigner};
use braid_operator::{Operator, OperatorConfig};
use braid_primitives::{
    BatchNumber, Block, BlockNumber, ChainId, ImportKind, MessageId, MESSENGER_ADDRESS,
};
use braid_relayer::{
    execute_message_calldata, DeliveryState, Fault, MessageStatus, Relayer, RelayerConfig,
    RelayerInput,
};
use braid_sequencer::{SealedBatch, Sequencer, SequencerConfig, SequencerOutput};
use braid_settlement::{AggregationConfig, ChainGenesis, SlCall, SlConfig, SlEvent, SlTx};
use braid_sl_store::PersistentSl;
use braid_store::ChainStore;

use crate::datadir::{Datadir, NetworkIdentity, Role};
use crate::NodeError;

/// How long the devnet's relayer waits for an import or an execution before it asks again:
/// ten blocks, and at least five seconds.
fn relay_retry_ms(block_time_ms: u64) -> u64 {
    block_time_ms.saturating_mul(10).max(5_000)
}

/// Configuration of a devnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevnetConfig {
    /// Chain ids, one rollup each.
    pub chains: Vec<ChainId>,
    /// Block time of every chain.
    pub block_time_ms: u64,
    /// Blocks per batch.
    pub batch_blocks: u64,
    /// Gas limit of every chain's blocks.
    pub block_gas_limit: u64,
    /// Sustained JSON-RPC requests per second each chain's server accepts (bursts of twice
    /// that); `0` removes the bound.
    pub rpc_requests_per_second: u32,
    /// SL block time.
    pub sl_block_time_ms: u64,
    /// Number of funded dev accounts (the same keys on every chain and on the SL).
    pub dev_accounts: u32,
    /// Balance of each dev account on each chain and on the SL.
    pub dev_balance: U256,
    /// Relay messages automatically.
    pub autorelay: bool,
    /// Where the redb files live.
    pub datadir: PathBuf,
}

impl DevnetConfig {
    /// Defaults: chains 901-903, 1 s blocks, 5-block batches, 30M gas per block, 20 000 RPC
    /// requests/s per chain, 1 s SL blocks, 10 dev accounts
    /// with 10 000 ETH each, autorelay on.
    pub fn new(datadir: impl Into<PathBuf>) -> Self {
        Self {
            chains: vec![901, 902, 903],
            block_time_ms: 1_000,
            batch_blocks: 5,
            block_gas_limit: 30_000_000,
            rpc_requests_per_second: 20_000,
            sl_block_time_ms: 1_000,
            dev_accounts: 10,
            dev_balance: U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18u64)),
            autorelay: true,
            datadir: datadir.into(),
        }
    }

    /// Rejects configurations the devnet cannot run with.
    pub fn validate(&self) -> Result<(), NodeError> {
        let bad = |m: &str| Err(NodeError::Config(m.to_string()));
        if self.chains.is_empty() || self.chains.len() > 64 {
            return bad("between 1 and 64 chains");
        }
        let mut ids = self.chains.clone();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.chains.len() || ids.contains(&0) {
            return bad("chain ids must be distinct and non-zero (0 is the settlement layer)");
        }
        if self.block_time_ms < 50 || self.sl_block_time_ms < 50 {
            return bad("block times must be at least 50 ms");
        }
        if self.block_gas_limit < braid_execution::TX_BASE_GAS {
            return bad("block_gas_limit must fit one transfer (21000)");
        }
        if self.batch_blocks == 0 || self.dev_accounts == 0 || self.dev_accounts > 1000 {
            return bad("batch_blocks must be positive and dev_accounts in 1..=1000");
        }
        Ok(())
    }
}

/// The security council's key on the devnet.
pub fn council_key() -> B256 {
    keccak256(b"braid devnet security council")
}

/// The operator key of a devnet chain.
pub fn operator_key(chain: ChainId) -> B256 {
    keccak256(format!("braid devnet operator {chain}").as_bytes())
}

/// The relayer's key on the devnet (funded on every chain).
pub fn relayer_signer() -> TxSigner {
    TxSigner::dev(1_000_000)
}

fn address_of(secret: &B256) -> Result<Address, NodeError> {
    Ok(TxSigner::from_secret(*secret)
        .map_err(|e| NodeError::Config(e.to_string()))?
        .address())
}

/// One line of the devnet's live log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    /// Wall-clock time.
    pub at_ms: u64,
    /// What happened.
    pub text: String,
}

/// A message as the status page and the `braid_` RPCs show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MessageView {
    /// `source:nonce`.
    pub id: String,
    /// Source chain.
    pub source: ChainId,
    /// Destination chain.
    pub dest: ChainId,
    /// Mode asked for.
    pub mode: &'static str,
    /// Value carried, in wei (decimal).
    pub value: String,
    /// Relayer status.
    pub status: String,
    /// What the relayer waits for before it can execute the message (absent once executed or
    /// undeliverable).
    pub waiting: Option<String>,
    /// Why the relayer can never deliver the message, if so.
    pub undeliverable: Option<String>,
    /// Whose fault an undeliverable message is: `sender` or `system`.
    pub fault: Option<&'static str>,
    /// When the source block with it was produced.
    pub sent_at_ms: Option<u64>,
    /// When the destination block executing it was produced.
    pub executed_at_ms: Option<u64>,
    /// Latency from send to execution.
    pub latency_ms: Option<u64>,
}

/// What a restart did with a chain's journaled pool (see [`ChainNode::new`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolRestore {
    /// Journaled transactions back in the pool.
    pub restored: Vec<B256>,
    /// Journaled transactions the pool refuses now (e.g. their nonce was used meanwhile), with
    /// why; they are removed from the journal.
    pub dropped: Vec<(B256, String)>,
}

/// A chain of the devnet: its node's protocol half (sequencer + operator, wired by
/// `braid-driver` as in the simulator) and its storage.
///
/// Every transaction the pool accepts is journaled in the chain's store before its hash is
/// returned ([`ChainNode::submit_tx`]); the store drops it from the journal in the same write as
/// the block that includes it, and [`ChainNode::persist`] when the pool drops it. A node opened
/// on a store puts the journaled transactions back in its pool.
pub struct ChainNode {
    /// The chain node: sequencer, operator and the operator's view of the SL.
    pub role: ChainRole,
    /// Its storage.
    pub store: ChainStore,
    /// The operator's key.
    operator_key: B256,
    /// What opening did with the journaled pool.
    pool_restore: PoolRestore,
}

impl LocalChain for ChainNode {
    fn chain_role(&self) -> &ChainRole {
        &self.role
    }
    fn chain_role_mut(&mut self) -> &mut ChainRole {
        &mut self.role
    }
    /// The relayer's submissions are journaled like every other.
    fn submit_pooled(&mut self, raw: Bytes) -> Result<(B256, Option<B256>), SubmitRefusal> {
        let (hash, replaced) = submit_to_role(&mut self.role, raw.clone())?;
        self.journal(hash, &raw, replaced)
            .map_err(SubmitRefusal::Other)?;
        Ok((hash, replaced))
    }
    fn evict_pooled(&mut self, hash: &B256) -> Option<u64> {
        let nonce = self.role.seq_mut().evict(hash).map(|tx| tx.nonce())?;
        if let Err(e) = self.store.unjournal_txs(&[*hash]) {
            // it would come back on a restart, and be refused or executed as any resubmission
            tracing::warn!("chain {}: cannot unjournal {hash}: {e}", self.role.id());
        }
        Some(nonce)
    }
}

impl ChainNode {
    /// A chain node from its parts (`operator` of the sequencer's chain). The transactions
    /// journaled in `store` are submitted to the pool again, lowest nonce first per sender;
    /// those it refuses now are removed from the journal and logged with their reason
    /// ([`ChainNode::pool_restore`]).
    pub fn new(
        seq: Sequencer,
        operator: Operator,
        store: ChainStore,
        operator_key: B256,
    ) -> Result<Self, NodeError> {
        let role = ChainRole::new(seq, operator, AggregationConfig::default())
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let mut node = Self {
            role,
            store,
            operator_key,
            pool_restore: PoolRestore::default(),
        };
        node.restore_pool()?;
        Ok(node)
    }

    fn restore_pool(&mut self) -> Result<(), NodeError> {
        let id = self.role.id();
        let mut journaled = Vec::new();
        let mut dropped = Vec::new();
        for (hash, raw) in self.store.journaled_txs()? {
            match braid_execution::RecoveredTx::decode(&raw) {
                Ok(tx) => journaled.push((tx.sender, tx.nonce(), hash, Bytes::from(raw))),
                Err(e) => dropped.push((hash, format!("undecodable: {e}"))),
            }
        }
        journaled.sort();
        let mut restored = Vec::new();
        for (_, _, hash, raw) in journaled {
            match self.role.submit_tx(raw).pop() {
                Some(ChainEffect::Output(SequencerOutput::TxAccepted { replaced, .. })) => {
                    if let Some(r) = replaced {
                        restored.retain(|h| *h != r);
                        dropped.push((r, format!("replaced by {hash}")));
                    }
                    restored.push(hash);
                }
                Some(ChainEffect::Output(SequencerOutput::TxRejected { error, .. })) => {
                    dropped.push((hash, error.to_string()))
                }
                other => dropped.push((hash, format!("unexpected sequencer answer {other:?}"))),
            }
        }
        let forget: Vec<B256> = dropped.iter().map(|(h, _)| *h).collect();
        self.store.unjournal_txs(&forget)?;
        for (hash, why) in &dropped {
            tracing::warn!("chain {id}: journaled transaction {hash} dropped on restart: {why}");
        }
        if !restored.is_empty() {
            tracing::info!(
                "chain {id}: {} journaled transactions back in the pool",
                restored.len()
            );
        }
        self.pool_restore = PoolRestore { restored, dropped };
        Ok(())
    }

    /// What opening did with the journaled pool.
    pub fn pool_restore(&self) -> &PoolRestore {
        &self.pool_restore
    }

    /// The sequencer core.
    pub fn seq(&self) -> &Sequencer {
        self.role.seq()
    }

    /// The operator's key.
    pub fn operator_key(&self) -> &B256 {
        &self.operator_key
    }

    /// Submits a raw transaction to the pool. An accepted one is journaled durably before its
    /// hash is returned; if the journal cannot be written it is taken out of the pool again and
    /// refused.
    pub fn submit_tx(&mut self, raw: Bytes) -> Result<B256, String> {
        self.submit_decoded(RecoveredTx::decode(&raw))
    }

    /// [`ChainNode::submit_tx`] for a transaction decoded (and its signature recovered) before:
    /// the RPC does that outside the lock that guards the node.
    pub fn submit_decoded(
        &mut self,
        decoded: Result<RecoveredTx, braid_execution::ExecutionError>,
    ) -> Result<B256, String> {
        let tx = decoded.map_err(|e| braid_sequencer::SequencerError::from(e).to_string())?;
        let raw = tx.raw.clone();
        match self.role.submit_recovered(tx).pop() {
            Some(ChainEffect::Output(SequencerOutput::TxAccepted { hash, replaced })) => {
                self.journal(hash, &raw, replaced).map(|()| hash)
            }
            Some(ChainEffect::Output(SequencerOutput::TxRejected { error, .. })) => {
                Err(error.to_string())
            }
            other => Err(format!("unexpected sequencer answer {other:?}")),
        }
    }

    /// Journals a transaction the pool just accepted (forgetting the one it replaced); if the
    /// journal cannot be written, takes it out of the pool again and says why.
    fn journal(&mut self, hash: B256, raw: &[u8], replaced: Option<B256>) -> Result<(), String> {
        match self.store.journal_tx(&hash, raw, replaced.as_slice()) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.role.seq_mut().evict(&hash);
                tracing::error!("chain {}: cannot journal {hash}: {e}", self.role.id());
                Err(format!("transaction not accepted: cannot journal it: {e}"))
            }
        }
    }

    /// Applies the storage side of a chain effect: a sealed block is persisted (with the batch
    /// it closes), a roll-back rolls the store back, finality is recorded. Returns a log line
    /// for a roll-back.
    pub fn persist(&mut self, effect: &ChainEffect) -> Result<Option<String>, NodeError> {
        let id = self.role.id();
        match effect {
            ChainEffect::BlockSealed { block, closes } => {
                self.store.persist_block(
                    &block.block,
                    &block.receipts,
                    &block.changes,
                    closes.as_ref(),
                )?;
                Ok(None)
            }
            ChainEffect::RolledBack { outcome, cause } => {
                // the revert journals the discarded blocks' transactions again; forget those the
                // pool did not take back (an `AlreadyKnown` one is pooled, and stays journaled)
                self.store.revert_to_block(outcome.head.number)?;
                let not_back: Vec<B256> = outcome
                    .txs_dropped
                    .iter()
                    .filter(|(_, why)| {
                        !matches!(
                            why,
                            braid_sequencer::RepoolRefusal::Pool(
                                braid_sequencer::MempoolError::AlreadyKnown(_)
                            )
                        )
                    })
                    .map(|(h, _)| *h)
                    .collect();
                self.store.unjournal_txs(&not_back)?;
                let why = match cause {
                    RollbackCause::Reverted(c) => format!("its batches were reverted ({c:?})"),
                    RollbackCause::VoidImports { source } => {
                        format!("its open batch imported from reverted chain {source}")
                    }
                };
                Ok(Some(format!(
                    "chain {id} re-sequencing from block {}: {why}; {} txs back in the pool{}",
                    outcome.head.number + 1,
                    outcome.txs_repooled,
                    not_repooled(outcome)
                )))
            }
            ChainEffect::Finalized { through } => {
                if let Some(h) = self.store.batch(*through)? {
                    self.store.finalize_through_block(h.lastBlock)?;
                }
                Ok(None)
            }
            ChainEffect::CheckFailed { batch, reason } => Ok(Some(format!(
                "chain {id} batch {batch} failed a settlement check: {reason}"
            ))),
            ChainEffect::Output(SequencerOutput::TxDropped { hash, .. }) => {
                self.store.unjournal_txs(&[*hash])?;
                Ok(None)
            }
            ChainEffect::BatchSealed { .. }
            | ChainEffect::Output(_)
            | ChainEffect::ImportRefused { .. }
            | ChainEffect::SlGap { .. }
            | ChainEffect::Doomed { .. } => Ok(None),
        }
    }
}

/// The whole devnet.
pub struct Devnet {
    config: DevnetConfig,
    /// The settlement layer with its log.
    pub sl: PersistentSl,
    /// Every chain.
    pub chains: BTreeMap<ChainId, ChainNode>,
    /// The relayer, as every shell runs it.
    pub relayer: RelayerRole,
    /// The relayer's key, for executions relayed by hand (`--no-autorelay`).
    relayer_key: TxSigner,
    sent_at: HashMap<MessageId, u64>,
    executed_at: HashMap<MessageId, u64>,
    log: VecDeque<LogLine>,
    counters: Counters,
}

/// Counters for the metrics endpoint.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counters {
    /// Blocks produced, all chains.
    pub blocks: u64,
    /// Transactions included, all chains.
    pub transactions: u64,
    /// Batches sealed, all chains.
    pub batches_sealed: u64,
    /// Batches executed on the SL.
    pub batches_executed: u64,
    /// Batches reverted on the SL.
    pub batches_reverted: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages executed, per mode.
    pub messages_executed: BTreeMap<&'static str, u64>,
    /// Sum of send-to-execution latencies, per mode.
    pub latency_ms_sum: BTreeMap<&'static str, u64>,
    /// Relayer errors.
    pub relayer_errors: u64,
}

const LOG_LINES: usize = 500;

impl Devnet {
    /// Opens the devnet in `config.datadir`: creates it on first use, otherwise resumes every
    /// chain from its store and the SL from its log, and rebuilds the relayer and operators.
    pub fn open(config: DevnetConfig) -> Result<Self, NodeError> {
        config.validate()?;
        let network = NetworkIdentity::of(&config)?;
        let mut datadir = Datadir::open(&config.datadir, &network, Role::Devnet)?;
        let alloc = Self::alloc(&config);
        let mut chains = BTreeMap::new();
        let mut genesis_headers = BTreeMap::new();
        let mut stored_blocks: BTreeMap<ChainId, Vec<(Block, Vec<braid_execution::TxReceipt>)>> =
            BTreeMap::new();
        let mut stored_batches: BTreeMap<ChainId, Vec<SealedBatch>> = BTreeMap::new();
        for &id in &config.chains {
            let (store, seq) = datadir.open_chain(&config, id)?;
            let genesis = store
                .block(0)?
                .ok_or_else(|| NodeError::Io("genesis block missing".into()))?;
            genesis_headers.insert(id, genesis.header.clone());
            let head = seq.head().number;
            let mut blocks = Vec::new();
            for n in 1..=head {
                let block = store
                    .block(n)?
                    .ok_or_else(|| NodeError::Io(format!("block {n} missing")))?;
                let receipts = store.receipts(n)?.unwrap_or_default();
                blocks.push((block, receipts));
            }
            let mut batches = Vec::new();
            for n in 1..=seq.last_batch() {
                if let Some(header) = store.batch(n)? {
                    let blocks_of = blocks
                        .iter()
                        .filter(|(b, _)| {
                            b.header.number >= header.firstBlock
                                && b.header.number <= header.lastBlock
                        })
                        .map(|(b, _)| b.clone())
                        .collect();
                    batches.push(SealedBatch {
                        header,
                        blocks: blocks_of,
                    });
                }
            }
            stored_blocks.insert(id, blocks);
            stored_batches.insert(id, batches);
            let node = ChainNode::new(
                seq,
                Operator::new(OperatorConfig::new(id)),
                store,
                operator_key(id),
            )?;
            chains.insert(id, node);
        }
        let (sl, replayed) = datadir.open_sl(&config)?;
        datadir.mark_ready()?;
        let mut devnet = Self {
            relayer: RelayerRole::new(
                Relayer::new(RelayerConfig::new(config.chains.clone())),
                relayer_signer(),
                relay_retry_ms(config.block_time_ms),
            ),
            relayer_key: relayer_signer(),
            config,
            sl,
            chains,
            sent_at: HashMap::new(),
            executed_at: HashMap::new(),
            log: VecDeque::new(),
            counters: Counters::default(),
        };
        if replayed.is_empty() {
            let council = council_key();
            for (i, (id, header)) in genesis_headers.iter().enumerate() {
                let call = SlCall::RegisterChain(ChainGenesis {
                    chain_id: *id,
                    operator: address_of(&operator_key(*id))?,
                    alloc: alloc.clone(),
                    genesis_header: header.clone(),
                });
                devnet.submit_sl(&council, i as u64, call)?;
            }
        }
        // rebuild the relayer's and the operators' view: blocks, batches, then the SL's history
        let mut replayed_effects = Vec::new();
        for (id, blocks) in stored_blocks {
            for (block, receipts) in blocks {
                devnet.note_block(&block, &receipts);
                replayed_effects.extend(
                    devnet
                        .relayer
                        .handle(0, RelayerInput::SourceBlock { block, receipts }),
                );
            }
            for batch in stored_batches.remove(&id).unwrap_or_default() {
                replayed_effects.extend(devnet.relayer.handle(
                    0,
                    RelayerInput::BatchSealed {
                        header: batch.header.clone(),
                    },
                ));
                if let Some(node) = devnet.chains.get_mut(&id) {
                    node.role.operator_mut().batch_sealed(batch)?;
                }
            }
        }
        for e in &replayed {
            replayed_effects.extend(devnet.relayer.observe_sl(0, e));
            for (id, node) in devnet.chains.iter_mut() {
                if route::operator_concerns(*id, e) {
                    // reverts already happened before the restart; finality is re-applied
                    node.role.replay_sl(e);
                }
            }
        }
        // the relayer's executions that came back from the journaled pools are waited for;
        // retry the rest of what it had handed out (the role skips what its destination
        // already executed)
        let mut adopted = std::collections::HashSet::new();
        for (id, node) in &devnet.chains {
            for hash in &node.pool_restore.restored {
                let message = node
                    .seq()
                    .mempool()
                    .get(hash)
                    .and_then(|tx| relayed_message(tx, devnet.relayer.address()));
                if let Some(message) = message {
                    devnet.relayer.adopt_pooled(*id, *hash, &message);
                    adopted.insert(message.id());
                }
            }
        }
        replayed_effects.extend(devnet.relayer.resume(0));
        let pending: Vec<RelayerEffect> = replayed_effects
            .into_iter()
            .filter(|a| match a {
                // an execution whose transaction is pooled again is waited for
                RelayerEffect::Execute { message, .. } => !adopted.contains(&message.id()),
                RelayerEffect::ExecuteDropped { .. } => true,
                RelayerEffect::Import { dest, root, .. } => {
                    devnet.chains.get(dest).is_some_and(|n| {
                        braid_execution::ImportKey::of(root)
                            .map(|k| n.seq().state().imported(&k).is_none())
                            .unwrap_or(false)
                    })
                }
                RelayerEffect::Error(_)
                | RelayerEffect::Postconfirm { .. }
                | RelayerEffect::Backfill { .. }
                | RelayerEffect::BackfillSl { .. } => false,
            })
            .collect();
        devnet.apply_relayer_effects(pending, 0);
        let heads: Vec<String> = devnet
            .chains
            .iter()
            .map(|(id, n)| format!("{id}@{}", n.seq().head().number))
            .collect();
        devnet.push_log(
            0,
            format!(
                "devnet ready: chains {}, SL height {}",
                heads.join(" "),
                devnet.sl.sl().height()
            ),
        );
        Ok(devnet)
    }

    /// Genesis balances of every chain: the dev accounts and the relayer.
    pub fn alloc(config: &DevnetConfig) -> Vec<(Address, U256)> {
        let mut alloc: Vec<(Address, U256)> = (0..config.dev_accounts)
            .map(|i| (TxSigner::dev(i).address(), config.dev_balance))
            .collect();
        alloc.push((relayer_signer().address(), config.dev_balance));
        alloc
    }

    /// The sequencer configuration of chain `id`.
    pub fn sequencer_config(config: &DevnetConfig, id: ChainId) -> SequencerConfig {
        let mut c = SequencerConfig::new(id);
        c.block_time_ms = config.block_time_ms;
        c.batch_blocks = config.batch_blocks;
        c.block_gas_limit = config.block_gas_limit;
        // the pool holds at least two blocks' worth of transfers, or a higher gas limit
        // could never be filled (1M transactions at most)
        let two_blocks = usize::try_from(config.block_gas_limit / braid_execution::TX_BASE_GAS)
            .unwrap_or(usize::MAX)
            .saturating_mul(2)
            .min(1 << 20);
        c.mempool.max_txs = c.mempool.max_txs.max(two_blocks);
        c.fee_recipient = Address::repeat_byte(0xfe);
        c
    }

    /// The settlement layer's configuration (council, timing, SL balances of the dev accounts).
    pub fn sl_config(config: &DevnetConfig) -> Result<SlConfig, NodeError> {
        let mut c = SlConfig::new(address_of(&council_key())?);
        c.sl_block_time_ms = config.sl_block_time_ms;
        // the council registers every chain in the SL's first block
        c.max_pending_txs_per_sender = c.max_pending_txs_per_sender.max(config.chains.len());
        c.genesis_balances = (0..config.dev_accounts)
            .map(|i| (TxSigner::dev(i).address(), config.dev_balance))
            .collect();
        Ok(c)
    }

    /// The configuration.
    pub fn config(&self) -> &DevnetConfig {
        &self.config
    }

    /// The most recent log lines (oldest first).
    pub fn log(&self) -> impl Iterator<Item = &LogLine> + '_ {
        self.log.iter()
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    fn push_log(&mut self, at_ms: u64, text: String) {
        tracing::info!(target: "braid::devnet", "{text}");
        if self.log.len() >= LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(LogLine { at_ms, text });
    }

    /// Signs and submits an SL call; `Ok(false)` if the SL refused it (it is not pooled, so
    /// its nonce is still free).
    fn submit_sl(&mut self, key: &B256, nonce: u64, call: SlCall) -> Result<bool, NodeError> {
        let tx = SlTx::sign(key, nonce, call).map_err(|e| NodeError::Config(e.to_string()))?;
        let mut accepted = true;
        for e in self.sl.submit(tx) {
            if let SlEvent::TxRejected { call, error, .. } = e {
                accepted = false;
                tracing::warn!(target: "braid::devnet", "SL refused {call}: {error}");
            }
        }
        Ok(accepted)
    }

    fn note_block(&mut self, block: &Block, receipts: &[braid_execution::TxReceipt]) {
        for r in receipts {
            if let Some(id) = r.message_sent {
                self.sent_at.entry(id).or_insert(block.header.timestampMs);
                self.counters.messages_sent += 1;
            }
            if let Some(id) = r.message_executed {
                self.executed_at.insert(id, block.header.timestampMs);
            }
        }
    }

    /// Submits a raw transaction to a chain's pool.
    pub fn submit_tx(&mut self, chain: ChainId, raw: Bytes) -> Result<B256, String> {
        let node = self
            .chains
            .get_mut(&chain)
            .ok_or_else(|| format!("unknown chain {chain}"))?;
        node.submit_tx(raw)
    }

    /// When the earliest chain block is due (ms since the epoch), for a clock that wakes on
    /// time instead of on its next periodic tick.
    pub fn next_block_due_ms(&self) -> Option<u64> {
        self.chains
            .values()
            .map(|c| c.seq().next_block_at_ms())
            .min()
    }

    /// Advances every role to `now_ms`: chains produce due blocks (persisted before anything
    /// else sees them), operators submit, the SL produces its block (logged before its events
    /// are acted on), and the relayer imports roots and executes messages.
    pub fn step(&mut self, now_ms: u64) -> Result<(), NodeError> {
        let ids: Vec<ChainId> = self.chains.keys().copied().collect();
        // the relayer's deadlines and retry backoff run on this time
        let dests = LocalChains {
            chains: &mut self.chains,
            now_ms,
        };
        let mut relayer_actions = self.relayer.tick(now_ms, &dests);
        for id in &ids {
            let effects = match self.chains.get_mut(id) {
                Some(node) => node.role.tick(now_ms)?,
                None => continue,
            };
            for effect in effects {
                self.chain_effect(*id, effect, now_ms, &mut relayer_actions)?;
            }
        }
        // operators
        for id in &ids {
            let Some(node) = self.chains.get_mut(id) else {
                continue;
            };
            let calls = node
                .role
                .operator_tick(self.sl.sl(), &WatchedSources(self.relayer.core()));
            let key = node.operator_key;
            // the next nonce counts the operator's txs still waiting for the next SL block
            let from = address_of(&key)?;
            let pooled = self.sl.buffered().iter().filter(|t| t.from == from).count() as u64;
            let first = self.sl.sl().nonce(&from) + pooled;
            for (nonce, call) in (first..).zip(calls) {
                // a refused call (e.g. the per-sender admission limit) leaves its nonce free:
                // later calls would be a nonce gap, so they wait for the next tick
                if !self.submit_sl(&key, nonce, call)? {
                    break;
                }
            }
        }
        // settlement layer
        let events = self.sl.tick(now_ms)?;
        for e in &events {
            self.sl_event(now_ms, e, &mut relayer_actions)?;
            relayer_actions.extend(self.relayer.observe_sl(now_ms, e));
        }
        self.apply_relayer_effects(relayer_actions, now_ms);
        Ok(())
    }

    /// Applies what chain `id`'s node asked for: persist, log, tell the relayer.
    fn chain_effect(
        &mut self,
        id: ChainId,
        effect: ChainEffect,
        now_ms: u64,
        relayer_actions: &mut Vec<RelayerEffect>,
    ) -> Result<(), NodeError> {
        if let Some(line) = match self.chains.get_mut(&id) {
            Some(node) => node.persist(&effect)?,
            None => None,
        } {
            self.push_log(now_ms, line);
        }
        match effect {
            ChainEffect::BlockSealed { block, .. } => {
                self.counters.blocks += 1;
                self.counters.transactions += block.block.transactions.len() as u64;
                let (block, receipts) = (block.block, block.receipts);
                self.note_block(&block, &receipts);
                for r in &receipts {
                    if let Some(mid) = r.message_executed {
                        self.log_execution(id, mid, block.header.number, block.header.timestampMs);
                    }
                }
                let n = block.header.number;
                let txs = block.transactions.len();
                if txs > 0 || !block.imports.is_empty() || !block.deposits.is_empty() {
                    self.push_log(
                        now_ms,
                        format!(
                            "chain {id} block {n}: {txs} txs, {} imports, {} deposits",
                            block.imports.len(),
                            block.deposits.len()
                        ),
                    );
                }
                for r in &receipts {
                    self.relayer.tx_included(id, r.tx_hash, n);
                }
                relayer_actions.extend(
                    self.relayer
                        .handle(now_ms, RelayerInput::SourceBlock { block, receipts }),
                );
                // the block made room in the pool for executions waiting for it
                let mut dests = LocalChains {
                    chains: &mut self.chains,
                    now_ms,
                };
                relayer_actions.extend(self.relayer.drain(now_ms, id, &mut dests));
            }
            ChainEffect::BatchSealed { batch, .. } => {
                self.counters.batches_sealed += 1;
                relayer_actions.extend(self.relayer.handle(
                    now_ms,
                    RelayerInput::BatchSealed {
                        header: batch.header.clone(),
                    },
                ));
            }
            ChainEffect::Output(SequencerOutput::TxDropped { hash, error }) => {
                let mut dests = LocalChains {
                    chains: &mut self.chains,
                    now_ms,
                };
                let dropped = self.relayer.tx_dropped(id, hash, &mut dests);
                if dropped.is_empty() {
                    self.push_log(now_ms, format!("chain {id} dropped tx {hash}: {error}"));
                } else {
                    tracing::debug!(target: "braid::devnet", "relay tx {hash} dropped: {error}");
                }
                relayer_actions.extend(dropped);
            }
            ChainEffect::Output(SequencerOutput::ImportRejected { import, .. })
            | ChainEffect::ImportRefused { import, .. } => {
                relayer_actions.extend(self.relayer.import_refused(now_ms, id, import));
            }
            ChainEffect::RolledBack { .. } => {
                let mut dests = LocalChains {
                    chains: &mut self.chains,
                    now_ms,
                };
                relayer_actions.extend(self.relayer.dest_rolled_back(id, &mut dests));
            }
            ChainEffect::CheckFailed { batch, reason } => {
                tracing::warn!(target: "braid::devnet", "chain {id} batch {batch} failed a settlement check: {reason}");
            }
            ChainEffect::Output(_)
            | ChainEffect::Doomed { .. }
            | ChainEffect::SlGap { .. }
            | ChainEffect::Finalized { .. } => {}
        }
        Ok(())
    }

    fn log_execution(&mut self, dest: ChainId, id: MessageId, block: BlockNumber, at_ms: u64) {
        let mode = self
            .relayer
            .core()
            .message(&id)
            .map_or("unknown", |r| r.mode.name());
        let latency = self.sent_at.get(&id).map(|s| at_ms.saturating_sub(*s));
        *self.counters.messages_executed.entry(mode).or_default() += 1;
        if let Some(l) = latency {
            *self.counters.latency_ms_sum.entry(mode).or_default() += l;
        }
        let latency = latency.map_or("?".into(), |l| format!("{:.1} s", l as f64 / 1000.0));
        self.push_log(at_ms, format!("message {id} executed on chain {dest} block {block} in {mode} mode after {latency}"));
    }

    fn sl_event(
        &mut self,
        now_ms: u64,
        e: &SlEvent,
        relayer_actions: &mut Vec<RelayerEffect>,
    ) -> Result<(), NodeError> {
        match e {
            SlEvent::DepositQueued(d) => {
                self.push_log(
                    now_ms,
                    format!(
                        "deposit {} of {} wei queued for chain {}",
                        d.index, d.amount, d.chainId
                    ),
                );
            }
            SlEvent::BatchCommitted { chain, batch, by } => {
                self.push_log(
                    now_ms,
                    format!("SL: chain {chain} batch {batch} committed ({by:?})"),
                );
            }
            SlEvent::BatchExecuted {
                chain,
                batch,
                message_root,
                ..
            } => {
                self.counters.batches_executed += 1;
                if let Some(rec) = self.sl.sl().batch(*chain, *batch) {
                    // executions in final blocks can no longer be re-pooled
                    self.relayer.dest_final(*chain, rec.header.lastBlock);
                }
                self.push_log(
                    now_ms,
                    format!("SL: chain {chain} batch {batch} executed, MessageRoot {message_root}"),
                );
            }
            SlEvent::BatchCheckFailed {
                chain,
                batch,
                reason,
            } => {
                self.push_log(
                    now_ms,
                    format!("SL: chain {chain} batch {batch} check failed: {reason}"),
                );
            }
            SlEvent::BatchesReverted {
                chain, from, to, ..
            } => {
                self.counters.batches_reverted += to - from + 1;
                self.push_log(
                    now_ms,
                    format!("SL: chain {chain} batches {from}..={to} reverted"),
                );
            }
            SlEvent::TxRejected { call, error, .. } => {
                tracing::warn!(target: "braid::devnet", "SL refused {call}: {error}");
            }
            _ => {}
        }
        let ids: Vec<ChainId> = self.chains.keys().copied().collect();
        for id in ids {
            if !route::operator_concerns(id, e) {
                continue;
            }
            let effects = match self.chains.get_mut(&id) {
                Some(node) => node.role.observe_sl(e, self.sl.sl())?,
                None => continue,
            };
            for effect in effects {
                self.chain_effect(id, effect, now_ms, relayer_actions)?;
            }
        }
        Ok(())
    }

    fn apply_relayer_effects(&mut self, effects: Vec<RelayerEffect>, now_ms: u64) {
        let mut queue: VecDeque<RelayerEffect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                RelayerEffect::Import { dest, root, epoch } => {
                    if !self.config.autorelay {
                        continue;
                    }
                    let Some(node) = self.chains.get_mut(&dest) else {
                        continue;
                    };
                    for effect in node.role.import(root, Some(epoch), self.sl.sl()) {
                        let refused = match effect {
                            ChainEffect::Output(SequencerOutput::ImportRejected {
                                import, ..
                            })
                            | ChainEffect::ImportRefused { import, .. } => import,
                            _ => continue,
                        };
                        queue.extend(self.relayer.import_refused(now_ms, dest, refused));
                    }
                }
                RelayerEffect::Execute {
                    dest,
                    message,
                    proof,
                } => {
                    if !self.config.autorelay {
                        continue;
                    }
                    let mut dests = LocalChains {
                        chains: &mut self.chains,
                        now_ms,
                    };
                    queue.extend(
                        self.relayer
                            .execution_arrived(now_ms, dest, message, proof, &mut dests),
                    );
                }
                RelayerEffect::ExecuteDropped { id, .. } => {
                    tracing::debug!(target: "braid::devnet", "relay of {id} refused or dropped");
                    queue.extend(self.relayer.execute_dropped(now_ms, id));
                }
                // no validators in the devnet yet: nothing is certified, nothing to postconfirm
                RelayerEffect::Postconfirm { .. } => {}
                // the in-process feed is ordered and gap-free: a backfill request means the
                // relayer saw a fork (or a revert it missed); answered from the chain's store
                RelayerEffect::Backfill { chain, from } => {
                    self.push_log(
                        now_ms,
                        format!("relayer: asks for blocks of chain {chain} from {from}"),
                    );
                    match self.stored_feed(chain, from) {
                        Ok(inputs) => {
                            for input in inputs {
                                queue.extend(self.relayer.handle(now_ms, input));
                            }
                        }
                        Err(e) => self.push_log(now_ms, format!("backfill of {chain}: {e}")),
                    }
                }
                // SL events are read in-process, none is lost
                RelayerEffect::BackfillSl { from, to } => {
                    self.push_log(now_ms, format!("relayer: asks for SL blocks {from}..={to}"));
                }
                RelayerEffect::Error(e) => {
                    self.counters.relayer_errors += 1;
                    self.push_log(now_ms, format!("relayer: {e}"));
                }
            }
        }
    }

    /// The relayer inputs that replay `chain` from block `from` to its head, from its store:
    /// each block with its receipts, then the header of each batch ending at or after `from`
    /// after its last block.
    fn stored_feed(&self, chain: ChainId, from: BlockNumber) -> Result<Vec<RelayerInput>, String> {
        let Some(node) = self.chains.get(&chain) else {
            return Ok(vec![]);
        };
        let mut headers = BTreeMap::new();
        for n in 1..=node.seq().last_batch() {
            if let Some(h) = node.store.batch(n).map_err(|e| e.to_string())? {
                if h.lastBlock >= from {
                    headers.insert(h.lastBlock, h);
                }
            }
        }
        let mut inputs = vec![];
        for n in from..=node.seq().head().number {
            let Some(block) = node.store.block(n).map_err(|e| e.to_string())? else {
                return Err(format!("block {n} missing"));
            };
            let receipts = node
                .store
                .receipts(n)
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            inputs.push(RelayerInput::SourceBlock { block, receipts });
            if let Some(header) = headers.remove(&n) {
                inputs.push(RelayerInput::BatchSealed { header });
            }
        }
        Ok(inputs)
    }

    /// Signs and submits `executeMessage(message, proof)` on `dest` with the relayer's key.
    pub fn relay_tx(
        &mut self,
        dest: ChainId,
        message: &braid_primitives::Message,
        proof: &braid_primitives::MessageProof,
    ) -> Result<B256, String> {
        let node = self
            .chains
            .get(&dest)
            .ok_or_else(|| format!("unknown chain {dest}"))?;
        let from = self.relayer_key.address();
        let account = node.seq().state().account(&from).nonce;
        let nonce = node.seq().mempool().pending_nonce(&from, account);
        let input = execute_message_calldata(message, proof);
        let raw = self
            .relayer_key
            .call(dest, nonce, MESSENGER_ADDRESS, U256::ZERO, input, 1_000_000)
            .map_err(|e| e.to_string())?;
        self.submit_tx(dest, raw)
    }

    /// Every message the relayer knows, newest first.
    pub fn messages(&self) -> Vec<MessageView> {
        message_views(
            self.relayer.core(),
            |id| self.sent_at.get(id).copied(),
            |id| self.executed_at.get(id).copied(),
        )
    }

    /// Settlement status of a chain's batch: `committed`, `proven`, `executed`, or `None`.
    pub fn batch_status(&self, chain: ChainId, batch: BatchNumber) -> Option<&'static str> {
        self.sl.sl().batch(chain, batch).map(|b| match b.status {
            braid_settlement::BatchStatus::Committed => "committed",
            braid_settlement::BatchStatus::Proven => "proven",
            braid_settlement::BatchStatus::Executed => "executed",
        })
    }

    /// Sends one demo message from `source` to `dest` in `mode` from dev account `from`.
    pub fn demo_message(
        &mut self,
        from: u32,
        source: ChainId,
        dest: ChainId,
        mode: ImportKind,
        value: U256,
    ) -> Result<B256, String> {
        use alloy_sol_types::SolCall;
        let signer = TxSigner::dev(from);
        let node = self
            .chains
            .get(&source)
            .ok_or_else(|| format!("unknown chain {source}"))?;
        let account = node.seq().state().account(&signer.address()).nonce;
        let nonce = node
            .seq()
            .mempool()
            .pending_nonce(&signer.address(), account);
        let input = braid_primitives::IMessenger::sendMessageWithModeCall {
            destChain: U256::from(dest),
            recipient: signer.address(),
            payload: Bytes::from(format!("braid demo {}", mode.name()).into_bytes()),
            mode: mode as u8,
        }
        .abi_encode();
        let raw = signer
            .call(
                source,
                nonce,
                MESSENGER_ADDRESS,
                value,
                input.into(),
                300_000,
            )
            .map_err(|e| e.to_string())?;
        self.submit_tx(source, raw)
    }
}

/// Every message `relayer` knows, newest first, with when each was sent and executed where the
/// shell knows it (the devnet and the relayer process serve these as `braid_messageStatus`).
pub fn message_views(
    relayer: &Relayer,
    sent_at: impl Fn(&MessageId) -> Option<u64>,
    executed_at: impl Fn(&MessageId) -> Option<u64>,
) -> Vec<MessageView> {
    let mut out: Vec<MessageView> = relayer
        .messages()
        .map(|r| {
            let id = r.message.id();
            let sent = sent_at(&id);
            let executed = executed_at(&id);
            let delivery = relayer.delivery(&id);
            let (waiting, undeliverable) = match delivery {
                Some(DeliveryState::Waiting(w)) => (Some(w.to_string()), None),
                Some(DeliveryState::Undeliverable(u)) => (None, Some(u)),
                _ => (None, None),
            };
            MessageView {
                id: id.to_string(),
                source: r.message.sourceChain,
                dest: r.message.destChain,
                mode: r.mode.name(),
                value: r.message.value.to_string(),
                status: match r.status {
                    MessageStatus::Sent { .. } => "sent".into(),
                    MessageStatus::Imported => "root imported".into(),
                    MessageStatus::Submitted => "submitted".into(),
                    MessageStatus::Executed { dest_block } => {
                        format!("executed in block {dest_block}")
                    }
                },
                waiting,
                undeliverable: undeliverable.map(|u| u.to_string()),
                fault: undeliverable.map(|u| match u.fault() {
                    Fault::Sender => "sender",
                    Fault::System => "system",
                }),
                sent_at_ms: sent,
                executed_at_ms: executed,
                latency_ms: sent.zip(executed).map(|(s, e)| e.saturating_sub(s)),
            }
        })
        .collect();
    out.sort_by(|a, b| b.sent_at_ms.cmp(&a.sent_at_ms).then(b.id.cmp(&a.id)));
    out
}

/// The message a pooled transaction of the relayer executes, if it is an `executeMessage` call.
fn relayed_message(
    tx: &braid_execution::RecoveredTx,
    relayer: Address,
) -> Option<braid_primitives::Message> {
    use alloy_sol_types::SolCall;
    if tx.sender != relayer || tx.to() != Some(MESSENGER_ADDRESS) {
        return None;
    }
    braid_primitives::IMessenger::executeMessageCall::abi_decode(tx.input())
        .ok()
        .map(|c| c.message)
}

/// The transactions a revert could not put back into the pool, with why, for the log (empty
/// when every one was re-pooled).
pub(crate) fn not_repooled(outcome: &braid_sequencer::RevertOutcome) -> String {
    outcome
        .txs_dropped
        .iter()
        .map(|(hash, why)| format!("; tx {hash} dropped: {why}"))
        .collect()
}
