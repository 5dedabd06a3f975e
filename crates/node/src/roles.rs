//! Each role as its own process over the network: the settlement layer (`braid node sl`), a chain
//! with its operator (`braid node chain --id N`) and the relayer (`braid relayer`). They run the
//! same cores as the devnet and talk JSON-RPC over HTTP:
//!
//! - the SL node serves `sl_submit` (a signed SL transaction), `sl_events` (its event log from an
//!   index), `sl_view` (a chain's batch progress) and `sl_nonce`;
//! - a chain node serves the Ethereum JSON-RPC plus `braid_blocks`, `braid_batch`,
//!   `braid_importRoot` and `braid_importedRoots`, and follows the SL and its peer chains (its
//!   operator needs the peers' message trees for extension proofs);
//! - the relayer follows every chain and the SL and imports roots / sends `executeMessage`.
//!
//! Every node persists what it accepted (chains: `braid-store`; SL: `braid-sl-store`) in its
//! datadir, which records the network, role and chain it holds ([`crate::datadir`]): a node
//! refuses a datadir of another network, role or chain, or one whose database is missing or
//! empty, and initialises only an empty or new directory. A chain node also journals the
//! transactions its pool accepted ([`crate::world::ChainNode`]), so a crash loses none of them.
//! The relayer keeps no state and
//! rebuilds its view from the chains and the SL when it starts.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use alloy_primitives::{Address, Bytes, B256};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use braid_driver::{
    route, ChainEffect, Destinations, NoTree, RelayerEffect, RelayerRole, SubmitRefusal,
    WatchedSources,
};
use braid_execution::{TxReceipt, TxSigner};
use braid_primitives::{
    BatchHeader, BatchNumber, Block, ChainId, Deposit, Message, MessageId, MessageProof,
    MESSENGER_ADDRESS,
};
use braid_relayer::{Relayer, RelayerConfig, RelayerInput};
use braid_rpc::RpcError;
use braid_sequencer::Sequencer;
use braid_settlement::{Authority, BatchStatus, ChainGenesis, RevertCause, SlCall, SlEvent, SlTx};
use braid_sl_store::PersistentSl;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{call, quantity};
use crate::datadir::{Datadir, NetworkIdentity, Role};
use crate::rpc::{chain_extension, ChainHost};
use crate::world::{council_key, operator_key, relayer_signer, ChainNode, Devnet, DevnetConfig};
use crate::NodeError;

/// An SL event as it travels between processes (rejections stay local to the SL node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum WireEvent {
    ChainRegistered {
        chain: ChainId,
    },
    DepositQueued {
        deposit: Deposit,
    },
    BatchCommitted {
        chain: ChainId,
        batch: BatchNumber,
        by: Authority,
    },
    BatchProven {
        chain: ChainId,
        batch: BatchNumber,
        by: Authority,
    },
    ExecutionRequested {
        chain: ChainId,
        batch: BatchNumber,
        by: Authority,
    },
    BatchExecuted {
        chain: ChainId,
        batch: BatchNumber,
        leaf_index: u64,
        message_root: B256,
    },
    BatchCheckFailed {
        chain: ChainId,
        batch: BatchNumber,
        reason: String,
    },
    BatchesReverted {
        chain: ChainId,
        from: BatchNumber,
        to: BatchNumber,
        first_block: u64,
        cause: RevertCause,
    },
    SlBlock {
        height: u64,
        timestamp_ms: u64,
        message_root: B256,
        message_root_size: u64,
    },
}

impl WireEvent {
    /// The wire form of an event; `None` for transaction rejections.
    pub fn from_event(e: &SlEvent) -> Option<Self> {
        // validator, optimistic-game and withdrawal events concern no role process yet
        if !e.for_batch_roles() {
            return None;
        }
        Some(match e {
            SlEvent::ChainRegistered { chain } => Self::ChainRegistered { chain: *chain },
            SlEvent::DepositQueued(d) => Self::DepositQueued { deposit: d.clone() },
            SlEvent::BatchCommitted { chain, batch, by } => Self::BatchCommitted {
                chain: *chain,
                batch: *batch,
                by: *by,
            },
            SlEvent::BatchProven { chain, batch, by } => Self::BatchProven {
                chain: *chain,
                batch: *batch,
                by: *by,
            },
            SlEvent::ExecutionRequested { chain, batch, by } => Self::ExecutionRequested {
                chain: *chain,
                batch: *batch,
                by: *by,
            },
            SlEvent::BatchExecuted {
                chain,
                batch,
                leaf_index,
                message_root,
            } => Self::BatchExecuted {
                chain: *chain,
                batch: *batch,
                leaf_index: *leaf_index,
                message_root: *message_root,
            },
            SlEvent::BatchCheckFailed {
                chain,
                batch,
                reason,
            } => Self::BatchCheckFailed {
                chain: *chain,
                batch: *batch,
                reason: reason.clone(),
            },
            SlEvent::BatchesReverted {
                chain,
                from,
                to,
                first_block,
                cause,
            } => Self::BatchesReverted {
                chain: *chain,
                from: *from,
                to: *to,
                first_block: *first_block,
                cause: *cause,
            },
            SlEvent::SlBlock {
                height,
                timestamp_ms,
                message_root,
                message_root_size,
            } => Self::SlBlock {
                height: *height,
                timestamp_ms: *timestamp_ms,
                message_root: *message_root,
                message_root_size: *message_root_size,
            },
            _ => return None,
        })
    }

    /// Back to the core's event type.
    pub fn into_event(self) -> SlEvent {
        match self {
            Self::ChainRegistered { chain } => SlEvent::ChainRegistered { chain },
            Self::DepositQueued { deposit } => SlEvent::DepositQueued(deposit),
            Self::BatchCommitted { chain, batch, by } => {
                SlEvent::BatchCommitted { chain, batch, by }
            }
            Self::BatchProven { chain, batch, by } => SlEvent::BatchProven { chain, batch, by },
            Self::ExecutionRequested { chain, batch, by } => {
                SlEvent::ExecutionRequested { chain, batch, by }
            }
            Self::BatchExecuted {
                chain,
                batch,
                leaf_index,
                message_root,
            } => SlEvent::BatchExecuted {
                chain,
                batch,
                leaf_index,
                message_root,
            },
            Self::BatchCheckFailed {
                chain,
                batch,
                reason,
            } => SlEvent::BatchCheckFailed {
                chain,
                batch,
                reason,
            },
            Self::BatchesReverted {
                chain,
                from,
                to,
                first_block,
                cause,
            } => SlEvent::BatchesReverted {
                chain,
                from,
                to,
                first_block,
                cause,
            },
            Self::SlBlock {
                height,
                timestamp_ms,
                message_root,
                message_root_size,
            } => SlEvent::SlBlock {
                height,
                timestamp_ms,
                message_root,
                message_root_size,
            },
        }
    }
}

/// A running role process: its address, its clock and its server.
pub struct RoleHandle {
    /// Where it serves JSON-RPC.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RoleHandle {
    /// Stops the clock and the server and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

type Dispatch<T> = fn(&Arc<Mutex<T>>, &str, &Value) -> Result<Value, RpcError>;
/// Prometheus text exposition of a role's state (served at `GET /metrics`).
type Metrics<T> = fn(&T) -> String;

/// Serves a minimal JSON-RPC 2.0 endpoint (single requests) with `dispatch`.
/// With `metrics`, also `GET /metrics` (Prometheus text) and `GET /health`.
async fn serve_json_rpc<T: Send + 'static>(
    port: u16,
    state: Arc<Mutex<T>>,
    dispatch: Dispatch<T>,
    metrics: Option<Metrics<T>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), NodeError> {
    struct App<T> {
        state: Arc<Mutex<T>>,
        dispatch: Dispatch<T>,
        metrics: Option<Metrics<T>>,
    }
    impl<T> Clone for App<T> {
        fn clone(&self) -> Self {
            Self {
                state: self.state.clone(),
                dispatch: self.dispatch,
                metrics: self.metrics,
            }
        }
    }
    async fn metrics_page<T: Send + 'static>(State(app): State<App<T>>) -> impl IntoResponse {
        let text = match app.metrics {
            Some(render) => render(&lock(&app.state)),
            None => String::new(),
        };
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            text,
        )
    }
    async fn handler<T: Send + 'static>(
        State(app): State<App<T>>,
        body: axum::body::Bytes,
    ) -> impl IntoResponse {
        let reply = tokio::task::spawn_blocking(move || {
            let req: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":e.to_string()}}),
            };
            let id = req.get("id").cloned().unwrap_or(Value::Null);
            let Some(method) = req.get("method").and_then(Value::as_str) else {
                return json!({"jsonrpc":"2.0","id":id,"error":{"code":-32600,"message":"method missing"}});
            };
            let params = req.get("params").cloned().unwrap_or(Value::Null);
            match (app.dispatch)(&app.state, method, &params) {
                Ok(result) => json!({"jsonrpc":"2.0","id":id,"result":result}),
                Err(e) => json!({"jsonrpc":"2.0","id":id,"error":{"code":e.code,"message":e.message}}),
            }
        })
        .await
        .unwrap_or_else(|e| json!({"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":e.to_string()}}));
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            reply.to_string(),
        )
    }
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|e| NodeError::Io(format!("cannot bind port {port}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| NodeError::Io(e.to_string()))?;
    let mut app = Router::new().route("/", post(handler::<T>));
    if metrics.is_some() {
        app = app
            .route("/metrics", axum::routing::get(metrics_page::<T>))
            .route("/health", axum::routing::get(|| async { "ok\n" }));
    }
    let app = app.with_state(App {
        state,
        dispatch,
        metrics,
    });
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|v| *v).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("server failed: {e}");
        }
    });
    Ok((addr, task))
}

/// Runs `step` every `every` on a blocking thread until stopped; an error stops the clock.
fn spawn_clock<T: Send + Sync + 'static>(
    state: T,
    every: Duration,
    mut stop: watch::Receiver<bool>,
    mut step: impl FnMut(&T, u64) -> Result<(), NodeError> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let state = Arc::new(state);
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let step = Arc::new(Mutex::new(move |s: &T, now| step(s, now)));
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.wait_for(|v| *v) => break,
            }
            let (s, f) = (state.clone(), step.clone());
            let result =
                tokio::task::spawn_blocking(move || (lock(&f))(&s, crate::run::now_ms())).await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!("step failed, stopping: {e}");
                    break;
                }
                Err(e) => {
                    tracing::error!("step panicked, stopping: {e}");
                    break;
                }
            }
        }
    })
}

// ------------------------------------------------------------------------------------------
// The settlement-layer node

/// The SL node's state: the core with its log, and every event so far (for followers).
pub struct SlNode {
    sl: PersistentSl,
    events: Vec<WireEvent>,
}

impl SlNode {
    /// Opens (or creates) the SL in `config.datadir`; on first start the council registers the
    /// configured chains with their devnet genesis.
    pub fn open(config: &DevnetConfig) -> Result<Self, NodeError> {
        let network = NetworkIdentity::of(config)?;
        let mut datadir = Datadir::open(&config.datadir, &network, Role::Sl)?;
        let (sl, replayed) = datadir.open_sl(config)?;
        datadir.mark_ready()?;
        let mut node = Self {
            sl,
            events: replayed.iter().filter_map(WireEvent::from_event).collect(),
        };
        if node.events.is_empty() {
            for (i, id) in config.chains.iter().enumerate() {
                let (_, genesis) = Sequencer::genesis(
                    Devnet::sequencer_config(config, *id),
                    &Devnet::alloc(config),
                )?;
                let call = SlCall::RegisterChain(ChainGenesis {
                    chain_id: *id,
                    operator: TxSigner::from_secret(operator_key(*id))
                        .map_err(|e| NodeError::Config(e.to_string()))?
                        .address(),
                    alloc: Devnet::alloc(config),
                    genesis_header: genesis.block.header,
                });
                let tx = SlTx::sign(&council_key(), i as u64, call)
                    .map_err(|e| NodeError::Config(e.to_string()))?;
                node.sl.submit(tx);
            }
        }
        Ok(node)
    }

    fn tick(&mut self, now_ms: u64) -> Result<(), NodeError> {
        for e in self.sl.tick(now_ms)? {
            match &e {
                SlEvent::TxRejected { call, error, .. } => {
                    tracing::warn!("SL refused {call}: {error}")
                }
                SlEvent::BatchExecuted { chain, batch, .. } => {
                    tracing::info!("chain {chain} batch {batch} executed")
                }
                SlEvent::BatchesReverted {
                    chain, from, to, ..
                } => tracing::info!("chain {chain} batches {from}..={to} reverted"),
                _ => {}
            }
            self.events.extend(WireEvent::from_event(&e));
        }
        Ok(())
    }

    fn rpc(state: &Arc<Mutex<Self>>, method: &str, params: &Value) -> Result<Value, RpcError> {
        let p = |i: usize| {
            params
                .as_array()
                .and_then(|a| a.get(i))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let mut n = lock(state);
        match method {
            "sl_submit" => {
                let tx: SlTx = serde_json::from_value(p(0))
                    .map_err(|e| RpcError::invalid_params(e.to_string()))?;
                match n.sl.submit(tx).into_iter().next() {
                    None => Ok(json!("queued")),
                    Some(SlEvent::TxRejected { error, .. }) => {
                        Err(RpcError::server(error.to_string()))
                    }
                    Some(other) => Err(RpcError::internal(format!("unexpected {other:?}"))),
                }
            }
            "sl_events" => {
                let from = p(0)
                    .as_u64()
                    .ok_or_else(|| RpcError::invalid_params("event index expected"))?
                    as usize;
                let to = n.events.len().min(from.saturating_add(1000));
                let events = n.events.get(from.min(to)..to).unwrap_or_default();
                Ok(json!({ "events": events, "next": to }))
            }
            "sl_nonce" => {
                let a: Address = serde_json::from_value(p(0))
                    .map_err(|e| RpcError::invalid_params(e.to_string()))?;
                let buffered = n.sl.buffered().iter().filter(|t| t.from == a).count() as u64;
                Ok(json!(n.sl.sl().nonce(&a) + buffered))
            }
            "sl_view" => {
                let chain = p(0)
                    .as_u64()
                    .ok_or_else(|| RpcError::invalid_params("chain id expected"))?;
                let sl = n.sl.sl();
                let rec = sl
                    .chain(chain)
                    .ok_or_else(|| RpcError::server(format!("unknown chain {chain}")))?;
                let batches: Vec<Value> = rec
                    .batches
                    .iter()
                    .map(|(b, r)| {
                        let status = match r.status {
                            BatchStatus::Committed => "committed",
                            BatchStatus::Proven => "proven",
                            BatchStatus::Executed => "executed",
                        };
                        json!([b, status, r.execute_request.is_some()])
                    })
                    .collect();
                Ok(
                    json!({ "height": sl.height(), "last_committed": rec.last_committed, "batches": batches }),
                )
            }
            _ => {
                drop(n);
                Err(RpcError::method_not_found(method))
            }
        }
    }
}

/// Starts the SL node: replays its log, serves JSON-RPC on `port` (0: any) and ticks its clock.
pub async fn start_sl(config: DevnetConfig, port: u16) -> Result<RoleHandle, NodeError> {
    config.validate()?;
    let every = Duration::from_millis((config.sl_block_time_ms / 10).clamp(10, 100));
    let node = Arc::new(Mutex::new(tokio::task::block_in_place(|| {
        SlNode::open(&config)
    })?));
    let (stop, stopped) = watch::channel(false);
    let (addr, server) =
        serve_json_rpc(port, node.clone(), SlNode::rpc, None, stopped.clone()).await?;
    let clock = spawn_clock(node, every, stopped, |n, now| lock(n).tick(now));
    Ok(RoleHandle {
        addr,
        stop,
        tasks: vec![server, clock],
    })
}

// ------------------------------------------------------------------------------------------
// Following chains and the SL over RPC (chain nodes and the relayer)

/// What a follower has read so far from the SL and from chains.
#[derive(Default)]
struct Cursors {
    sl_event: u64,
    next_block: BTreeMap<ChainId, u64>,
    next_batch: BTreeMap<ChainId, u64>,
}

/// What a follower fetched in one round.
#[derive(Default)]
struct Fetched {
    events: Vec<SlEvent>,
    blocks: Vec<(ChainId, Block, Vec<TxReceipt>)>,
    batches: Vec<(ChainId, BatchHeader)>,
}

/// Reads new SL events and new blocks/batches of `chains` (id → RPC URL) since `cursors`.
fn fetch(sl_url: &str, chains: &BTreeMap<ChainId, String>, cursors: &mut Cursors) -> Fetched {
    let mut out = Fetched::default();
    if let Ok(r) = call(sl_url, "sl_events", json!([cursors.sl_event])) {
        if let Ok(events) = serde_json::from_value::<Vec<WireEvent>>(r["events"].clone()) {
            cursors.sl_event += events.len() as u64;
            out.events = events.into_iter().map(WireEvent::into_event).collect();
        }
    }
    for (id, url) in chains {
        let next = cursors.next_block.entry(*id).or_insert(0);
        if let Ok(r) = call(url, "braid_blocks", json!([*next, 200])) {
            if let Some(list) = r["blocks"].as_array() {
                for item in list {
                    let block: Result<Block, _> = serde_json::from_value(item["block"].clone());
                    let receipts: Result<Vec<TxReceipt>, _> =
                        serde_json::from_value(item["receipts"].clone());
                    match (block, receipts) {
                        (Ok(b), Ok(r)) if b.header.number == *next => {
                            *next += 1;
                            out.blocks.push((*id, b, r));
                        }
                        _ => break,
                    }
                }
            }
        }
        // a batch header follows its last block: one whose blocks were not read yet (at most
        // 200 are read per round) is read in a later round, not skipped
        let read_to = *next;
        let next_batch = cursors.next_batch.entry(*id).or_insert(1);
        while let Ok(v) = call(url, "braid_batch", json!([*next_batch])) {
            match serde_json::from_value::<Option<BatchHeader>>(v) {
                Ok(Some(h)) if h.lastBlock < read_to => {
                    out.batches.push((*id, h));
                    *next_batch += 1;
                }
                _ => break,
            }
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// The chain node

/// A chain node process: the chain, its operator, and a watcher of its peers (for the
/// operator's extension proofs).
pub struct ChainProcess {
    id: ChainId,
    node: ChainNode,
    watcher: Relayer,
    sl_url: String,
    peers: BTreeMap<ChainId, String>,
    cursors: Cursors,
}

impl ChainHost for ChainProcess {
    fn node(&self, chain: ChainId) -> Option<&ChainNode> {
        (chain == self.id).then_some(&self.node)
    }
    fn node_mut(&mut self, chain: ChainId) -> Option<&mut ChainNode> {
        (chain == self.id).then_some(&mut self.node)
    }
    fn host_extension(
        &mut self,
        chain: ChainId,
        method: &str,
        params: &Value,
    ) -> Option<Result<Value, RpcError>> {
        (chain == self.id)
            .then(|| chain_extension(&mut self.node, method, params))
            .flatten()
    }
}

impl ChainProcess {
    /// Opens chain `id` from `config.datadir` (creating it on first use).
    pub fn open(
        config: &DevnetConfig,
        id: ChainId,
        sl_url: String,
        peers: BTreeMap<ChainId, String>,
    ) -> Result<Self, NodeError> {
        let network = NetworkIdentity::of(config)?;
        let mut datadir = Datadir::open(&config.datadir, &network, Role::Chain { chain: id })?;
        let (store, seq) = datadir.open_chain(config, id)?;
        datadir.mark_ready()?;
        // the operator reads the SL over the network: give a call time to show its effect
        let mut op_config = braid_operator::OperatorConfig::new(id);
        op_config.resend_after_blocks = 3;
        let operator = braid_operator::Operator::new(op_config);
        let mut node = ChainNode::new(seq, operator, store, operator_key(id))?;
        // the operator learns its sealed batches from the store; the SL tells it the rest
        for n in 1..=node.seq().last_batch() {
            if let Some(header) = node.store.batch(n)? {
                let mut blocks = Vec::new();
                for b in header.firstBlock..=header.lastBlock {
                    blocks.extend(node.store.block(b)?);
                }
                node.role
                    .operator_mut()
                    .batch_sealed(braid_sequencer::SealedBatch { header, blocks })?;
            }
        }
        let mut watched: Vec<ChainId> = peers.keys().copied().collect();
        watched.push(id);
        Ok(Self {
            id,
            node,
            watcher: Relayer::new(RelayerConfig::new(watched)),
            sl_url,
            peers,
            cursors: Cursors::default(),
        })
    }

    fn feed_own_history(&mut self) -> Result<(), NodeError> {
        for n in 0..=self.node.seq().head().number {
            if let Some(block) = self.node.store.block(n)? {
                let receipts = self.node.store.receipts(n)?.unwrap_or_default();
                self.watcher
                    .handle(RelayerInput::SourceBlock { block, receipts });
            }
        }
        for n in 1..=self.node.seq().last_batch() {
            if let Some(header) = self.node.store.batch(n)? {
                self.watcher.handle(RelayerInput::BatchSealed { header });
            }
        }
        Ok(())
    }

    fn local_step(&mut self, now_ms: u64) -> Result<(), NodeError> {
        for effect in self.node.role.tick(now_ms)? {
            self.effect(effect)?;
        }
        Ok(())
    }

    /// Applies what the chain node asked for: persist, log, feed the own-chain watcher.
    fn effect(&mut self, effect: ChainEffect) -> Result<(), NodeError> {
        if let Some(line) = self.node.persist(&effect)? {
            tracing::warn!("{line}");
        }
        match effect {
            ChainEffect::BlockSealed { block, .. } => {
                if !block.block.transactions.is_empty() {
                    tracing::info!(
                        "chain {} block {}: {} txs",
                        self.id,
                        block.block.header.number,
                        block.block.transactions.len()
                    );
                }
                self.watcher.handle(RelayerInput::SourceBlock {
                    block: block.block,
                    receipts: block.receipts,
                });
            }
            ChainEffect::BatchSealed { batch, .. } => {
                self.watcher.handle(RelayerInput::BatchSealed {
                    header: batch.header,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Reads the SL's and the peers' history before the clock starts. Reverts in that history
    /// already happened to this chain before it stopped, so they are not applied again.
    fn catch_up(&mut self) -> Result<(), NodeError> {
        loop {
            let fetched = fetch(&self.sl_url, &self.peers, &mut self.cursors);
            if fetched.events.is_empty() && fetched.blocks.is_empty() {
                return Ok(());
            }
            self.apply(fetched, true)?;
        }
    }

    fn apply(&mut self, fetched: Fetched, replaying: bool) -> Result<(), NodeError> {
        for (id, block, receipts) in fetched.blocks {
            if id != self.id {
                self.watcher
                    .handle(RelayerInput::SourceBlock { block, receipts });
            }
        }
        for (id, header) in fetched.batches {
            if id != self.id {
                self.watcher.handle(RelayerInput::BatchSealed { header });
            }
        }
        for e in &fetched.events {
            self.watcher.observe_sl(e);
            if !route::operator_concerns(self.id, e) {
                continue;
            }
            if replaying {
                // reverts in this history happened to the chain before it stopped
                self.node.role.replay_sl(e);
                continue;
            }
            for effect in self.node.role.observe_sl(e, &NoTree)? {
                self.effect(effect)?;
            }
        }
        Ok(())
    }
}

/// Starts chain `id`: its JSON-RPC on `port`, its sequencer clock, and its operator following
/// the SL at `sl_url` and the `peers` (id → RPC URL) it may import from.
pub async fn start_chain(
    config: DevnetConfig,
    id: ChainId,
    port: u16,
    sl_url: String,
    peers: BTreeMap<ChainId, String>,
) -> Result<RoleHandle, NodeError> {
    config.validate()?;
    let every = Duration::from_millis((config.block_time_ms / 10).clamp(10, 100));
    let mut process =
        tokio::task::block_in_place(|| ChainProcess::open(&config, id, sl_url, peers))?;
    process.feed_own_history()?;
    tokio::task::block_in_place(|| process.catch_up())?;
    let host = Arc::new(Mutex::new(process));
    let (stop, stopped) = watch::channel(false);
    let backend = Arc::new(crate::rpc::ChainRpc::new(host.clone(), id));
    let server = braid_rpc::serve(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        backend,
        braid_rpc::RpcLimits::default(),
    )
    .await
    .map_err(|e| NodeError::Io(format!("cannot bind port {port}: {e}")))?;
    let addr = server.local_addr();
    let mut rpc_stop = stopped.clone();
    let rpc_task = tokio::spawn(async move {
        let _ = rpc_stop.wait_for(|v| *v).await;
        let _ = server.shutdown().await;
    });
    let clock = spawn_clock(host, every, stopped, move |h, now| {
        lock(h).local_step(now)?;
        // network reads happen without the lock
        let (sl_url, peers, mut cursors, key) = {
            let p = lock(h);
            (
                p.sl_url.clone(),
                p.peers.clone(),
                lock_cursors(&p),
                *p.node.operator_key(),
            )
        };
        let fetched = fetch(&sl_url, &peers, &mut cursors);
        let calls = {
            let mut p = lock(h);
            p.cursors = cursors;
            p.apply(fetched, false)?;
            let ChainProcess { node, watcher, .. } = &mut *p;
            node.role.operator_tick(&NoTree, &WatchedSources(&*watcher))
        };
        if !calls.is_empty() {
            let from = TxSigner::from_secret(key)
                .map_err(|e| NodeError::Config(e.to_string()))?
                .address();
            let mut nonce = call(&sl_url, "sl_nonce", json!([from]))
                .ok()
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            for c in calls {
                let tx =
                    SlTx::sign(&key, nonce, c).map_err(|e| NodeError::Config(e.to_string()))?;
                match call(&sl_url, "sl_submit", json!([tx])) {
                    Ok(_) => nonce += 1,
                    Err(e) => tracing::warn!("SL refused an operator call: {e}"),
                }
            }
        }
        Ok(())
    });
    Ok(RoleHandle {
        addr,
        stop,
        tasks: vec![rpc_task, clock],
    })
}

fn lock_cursors(p: &ChainProcess) -> Cursors {
    Cursors {
        sl_event: p.cursors.sl_event,
        next_block: p.cursors.next_block.clone(),
        next_batch: p.cursors.next_batch.clone(),
    }
}

// ------------------------------------------------------------------------------------------
// The relayer

/// How long the relayer process waits for an import or an execution before asking again.
const RELAY_RETRY_MS: u64 = 10_000;

/// The relayer process: follows every chain and the SL; imports roots and executes messages,
/// through the same [`RelayerRole`] as the simulator and the devnet.
pub struct RelayerProcess {
    role: RelayerRole,
    chains: BTreeMap<ChainId, String>,
    sl_url: String,
    cursors: Cursors,
    /// When the relayer first saw each message it carries (ms since the epoch).
    first_seen: BTreeMap<MessageId, u64>,
    /// When the relayer saw each message executed.
    executed_seen: BTreeMap<MessageId, u64>,
    /// When the last round ended.
    last_round_ms: u64,
}

/// The relayer's destinations over JSON-RPC.
struct RpcDestinations<'a> {
    chains: &'a BTreeMap<ChainId, String>,
}

impl Destinations for RpcDestinations<'_> {
    fn pending_nonce(&self, dest: ChainId, from: &Address) -> Option<u64> {
        let url = self.chains.get(&dest)?;
        call(url, "eth_getTransactionCount", json!([from, "pending"]))
            .and_then(|v| quantity(&v))
            .ok()
    }

    /// The core asks for an execution only once it saw the root imported in a destination
    /// block (fed in order over RPC): nothing to wait for.
    fn holds_root(&self, _dest: ChainId, _message: &Message, _proof: &MessageProof) -> bool {
        true
    }

    fn executed(&self, dest: ChainId, id: &MessageId) -> bool {
        use alloy_sol_types::SolCall;
        let Some(url) = self.chains.get(&dest) else {
            return false;
        };
        let data = braid_primitives::IMessenger::isExecutedCall {
            sourceChain: id.source_chain,
            nonce: id.nonce,
        }
        .abi_encode();
        let answer = call(
            url,
            "eth_call",
            json!([{ "to": MESSENGER_ADDRESS, "data": Bytes::from(data) }, "latest"]),
        );
        answer
            .ok()
            .and_then(|v| serde_json::from_value::<Bytes>(v).ok())
            .is_some_and(|b| b.last() == Some(&1))
    }

    fn pooled(&self, dest: ChainId, hash: &B256) -> bool {
        let Some(url) = self.chains.get(&dest) else {
            return false;
        };
        let receipt = call(url, "eth_getTransactionReceipt", json!([hash])).unwrap_or(Value::Null);
        let tx = call(url, "eth_getTransactionByHash", json!([hash])).unwrap_or(Value::Null);
        receipt.is_null() && !tx.is_null()
    }

    fn submit(&mut self, dest: ChainId, raw: Bytes) -> Result<(B256, Option<B256>), SubmitRefusal> {
        let url = self
            .chains
            .get(&dest)
            .ok_or_else(|| SubmitRefusal::Other(format!("unknown chain {dest}")))?;
        match call(url, "eth_sendRawTransaction", json!([raw])) {
            Ok(v) => serde_json::from_value(v)
                .map(|hash| (hash, None))
                .map_err(|e| SubmitRefusal::Other(e.to_string())),
            // `MempoolError::PoolFull` / `SenderFull`: back-pressure, sent again with room
            Err(e) if e.contains("pool is full") || e.contains("pooled transactions") => {
                Err(SubmitRefusal::PoolFull(e))
            }
            Err(e) => Err(SubmitRefusal::Other(e)),
        }
    }
}

impl RelayerProcess {
    /// A relayer for `chains` (id → RPC URL) and the SL at `sl_url`, paying with `key`.
    pub fn new(chains: BTreeMap<ChainId, String>, sl_url: String, key: TxSigner) -> Self {
        let core = Relayer::new(RelayerConfig::new(chains.keys().copied().collect()));
        Self {
            role: RelayerRole::new(core, key, RELAY_RETRY_MS),
            chains,
            sl_url,
            cursors: Cursors::default(),
            first_seen: BTreeMap::new(),
            executed_seen: BTreeMap::new(),
            last_round_ms: 0,
        }
    }

    /// Every message the relayer carries, newest first (`sent_at_ms` is when the relayer
    /// first saw it, `executed_at_ms` when it saw the execution).
    pub fn messages(&self) -> Vec<crate::world::MessageView> {
        crate::world::message_views(
            self.role.core(),
            |id| self.first_seen.get(id).copied(),
            |id| self.executed_seen.get(id).copied(),
        )
    }

    /// The relayer's JSON-RPC: `braid_messageStatus(id)`, `braid_messages()`,
    /// `braid_relayerStatus()`.
    fn rpc(p: &Arc<Mutex<Self>>, method: &str, params: &Value) -> Result<Value, RpcError> {
        let p = lock(p);
        match method {
            "braid_messageStatus" => {
                let id = params.get(0).and_then(Value::as_str).ok_or_else(|| {
                    RpcError::invalid_params("message id `source:nonce` expected")
                })?;
                let parsed: Option<MessageId> = id.split_once(':').and_then(|(c, n)| {
                    Some(MessageId {
                        source_chain: c.parse().ok()?,
                        nonce: n.parse().ok()?,
                    })
                });
                let id = parsed.ok_or_else(|| {
                    RpcError::invalid_params(format!("bad message id {id}: expected source:nonce"))
                })?;
                p.messages()
                    .into_iter()
                    .find(|m| m.id == id.to_string())
                    .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
                    .ok_or_else(|| RpcError::server(format!("unknown message {id}")))
            }
            "braid_messages" => Ok(serde_json::to_value(p.messages()).unwrap_or(Value::Null)),
            "braid_relayerStatus" => {
                let c = p.role.counters();
                Ok(json!({
                    "chains": p.chains.keys().collect::<Vec<_>>(),
                    "lastRoundMs": p.last_round_ms,
                    "pending": p.role.core().pending_messages().count(),
                    "undeliverable": p.role.core().undeliverable_messages().count(),
                    "executeRetries": c.execute_retries,
                    "importRetries": c.import_retries,
                    "executionsDropped": c.executions_dropped,
                    "executionsSkipped": c.executions_skipped,
                    "errors": c.errors,
                }))
            }
            _ => Err(RpcError::method_not_found(method)),
        }
    }

    /// Prometheus metrics: messages pending per mode and destination, the oldest pending
    /// message's age, retries, drops, and undeliverable messages by reason.
    pub fn metrics(&self) -> String {
        use std::fmt::Write as _;
        let now = crate::run::now_ms();
        let mut pending: BTreeMap<(&'static str, ChainId), u64> = BTreeMap::new();
        let mut oldest = 0u64;
        for r in self.role.core().pending_messages() {
            *pending
                .entry((r.mode.name(), r.message.destChain))
                .or_default() += 1;
            if let Some(seen) = self.first_seen.get(&r.message.id()) {
                oldest = oldest.max(now.saturating_sub(*seen));
            }
        }
        let mut undeliverable: BTreeMap<String, u64> = BTreeMap::new();
        for (_, why) in self.role.core().undeliverable_messages() {
            let reason = format!("{why:?}");
            let reason = reason
                .split(|c: char| !c.is_alphanumeric())
                .next()
                .unwrap_or_default()
                .to_string();
            *undeliverable.entry(reason).or_default() += 1;
        }
        let c = self.role.counters();
        let mut out = String::new();
        let _ = writeln!(out, "# HELP braid_relayer_messages_pending Messages not executed yet, by mode and destination.");
        let _ = writeln!(out, "# TYPE braid_relayer_messages_pending gauge");
        for ((mode, dest), n) in &pending {
            let _ = writeln!(
                out,
                "braid_relayer_messages_pending{{mode=\"{mode}\",dest=\"{dest}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP braid_relayer_oldest_pending_seconds Age of the oldest pending message (since the relayer saw it).");
        let _ = writeln!(out, "# TYPE braid_relayer_oldest_pending_seconds gauge");
        let _ = writeln!(
            out,
            "braid_relayer_oldest_pending_seconds {:.3}",
            oldest as f64 / 1000.0
        );
        let _ = writeln!(out, "# HELP braid_relayer_messages_undeliverable Messages the relayer can never deliver, by reason.");
        let _ = writeln!(out, "# TYPE braid_relayer_messages_undeliverable gauge");
        for (reason, n) in &undeliverable {
            let _ = writeln!(
                out,
                "braid_relayer_messages_undeliverable{{reason=\"{reason}\"}} {n}"
            );
        }
        for (name, help, v) in [
            (
                "execute_retries_total",
                "Executions sent again after a drop or a timeout.",
                c.execute_retries,
            ),
            (
                "import_retries_total",
                "Imports sent again after a refusal or a timeout.",
                c.import_retries,
            ),
            (
                "executions_dropped_total",
                "Execution transactions refused or dropped by a destination.",
                c.executions_dropped,
            ),
            (
                "executions_skipped_total",
                "Executions not sent because the destination had executed the message.",
                c.executions_skipped,
            ),
            (
                "errors_total",
                "Inconsistencies the relayer core detected in what it was fed.",
                c.errors,
            ),
        ] {
            let _ = writeln!(out, "# HELP braid_relayer_{name} {help}");
            let _ = writeln!(out, "# TYPE braid_relayer_{name} counter");
            let _ = writeln!(out, "braid_relayer_{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP braid_relayer_last_round_timestamp_ms When the relayer's last round ended."
        );
        let _ = writeln!(out, "# TYPE braid_relayer_last_round_timestamp_ms gauge");
        let _ = writeln!(
            out,
            "braid_relayer_last_round_timestamp_ms {}",
            self.last_round_ms
        );
        out
    }

    /// One round: read, decide, act.
    pub fn step(&mut self) {
        let now = crate::run::now_ms();
        let fetched = fetch(&self.sl_url, &self.chains, &mut self.cursors);
        let dests = RpcDestinations {
            chains: &self.chains,
        };
        // deadlines: imports and executions not seen in time are asked again (an execution
        // still in its destination's pool is waited for)
        let mut effects = self.role.tick(now, &dests);
        for (chain, block, receipts) in fetched.blocks {
            for r in &receipts {
                self.role.tx_included(chain, r.tx_hash, block.header.number);
            }
            effects.extend(
                self.role
                    .handle(now, RelayerInput::SourceBlock { block, receipts }),
            );
        }
        for (_, header) in fetched.batches {
            effects.extend(self.role.handle(now, RelayerInput::BatchSealed { header }));
        }
        for e in &fetched.events {
            effects.extend(self.role.observe_sl(now, e));
        }
        // executions held back by a full pool go in as the destinations make room
        let mut dests = RpcDestinations {
            chains: &self.chains,
        };
        for dest in self.chains.keys() {
            effects.extend(self.role.drain(now, *dest, &mut dests));
        }
        self.apply(now, effects);
        for r in self.role.core().messages() {
            let id = r.message.id();
            self.first_seen.entry(id).or_insert(now);
            if matches!(r.status, braid_relayer::MessageStatus::Executed { .. }) {
                self.executed_seen.entry(id).or_insert(now);
            }
        }
        self.last_round_ms = crate::run::now_ms();
    }

    fn apply(&mut self, now: u64, effects: Vec<RelayerEffect>) {
        let mut queue: VecDeque<RelayerEffect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                RelayerEffect::Import { dest, root, epoch } => {
                    let Some(url) = self.chains.get(&dest) else {
                        continue;
                    };
                    if let Err(e) = call(url, "braid_importRoot", json!([root, epoch])) {
                        tracing::warn!("import into {dest} refused: {e}");
                        queue.extend(self.role.import_refused(now, dest, root));
                    }
                }
                RelayerEffect::Execute {
                    dest,
                    message,
                    proof,
                } => {
                    let id = message.id();
                    let mut dests = RpcDestinations {
                        chains: &self.chains,
                    };
                    let out = self
                        .role
                        .execution_arrived(now, dest, message, proof, &mut dests);
                    if out.is_empty() {
                        tracing::info!("relayed {id} to chain {dest}");
                    }
                    queue.extend(out);
                }
                RelayerEffect::ExecuteDropped { dest, id } => {
                    tracing::warn!("relay of {id} to chain {dest} refused or dropped");
                    // the first retry is immediate, later ones back off
                    queue.extend(self.role.execute_dropped(now, id));
                }
                RelayerEffect::Postconfirm { .. } => {}
                // SL events are read by index with `observe_sl`, which does not follow heights
                RelayerEffect::BackfillSl { from, to } => {
                    tracing::warn!("relayer: asks for SL blocks {from}..={to}")
                }
                RelayerEffect::Backfill { chain, from } => {
                    // re-read the chain from `from` (and the batches ending there or later) on
                    // the next round
                    tracing::info!("relayer: backfilling chain {chain} from block {from}");
                    let next = self.cursors.next_block.entry(chain).or_insert(0);
                    *next = (*next).min(from);
                    let batch = match from.checked_sub(1) {
                        Some(b) => self
                            .role
                            .core()
                            .batch_of_block(chain, b)
                            .map_or(1, |h| h.number + u64::from(h.lastBlock < from)),
                        None => 1,
                    };
                    let next_batch = self.cursors.next_batch.entry(chain).or_insert(1);
                    *next_batch = (*next_batch).min(batch);
                }
                RelayerEffect::Error(e) => tracing::warn!("relayer: {e}"),
            }
        }
    }
}

/// Starts the relayer process, polling every `every`.
/// It serves JSON-RPC (`braid_messageStatus`, `braid_messages`, `braid_relayerStatus`),
/// `GET /metrics` and `GET /health` on `port` (0: any free port; see [`RoleHandle::addr`]).
pub async fn start_relayer(
    chains: BTreeMap<ChainId, String>,
    sl_url: String,
    key: Option<TxSigner>,
    every: Duration,
    port: u16,
) -> Result<RoleHandle, NodeError> {
    let process = Arc::new(Mutex::new(RelayerProcess::new(
        chains,
        sl_url,
        key.unwrap_or_else(relayer_signer),
    )));
    let (stop, stopped) = watch::channel(false);
    let (addr, server) = serve_json_rpc(
        port,
        process.clone(),
        RelayerProcess::rpc,
        Some(RelayerProcess::metrics),
        stopped.clone(),
    )
    .await?;
    let clock = spawn_clock(process, every, stopped, |p, _| {
        lock(p).step();
        Ok(())
    });
    Ok(RoleHandle {
        addr,
        stop,
        tasks: vec![server, clock],
    })
}
