//! The async shell: drives the devnet world with the wall clock and serves it over HTTP.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::U256;
use braid_primitives::{ChainId, ImportKind};
use braid_rpc::{RpcLimits, RpcServer};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::world::{Devnet, DevnetConfig};
use crate::{rpc::ChainRpc, NodeError};

/// Where the devnet listens. Port 0 picks a free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The first chain's JSON-RPC port; chain `i` listens on `rpc_base + i` (or a free port each
    /// when 0).
    pub rpc_base: u16,
    /// The status page, `/status.json` and `/metrics`.
    pub status: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            rpc_base: 8545,
            status: 8550,
        }
    }
}

/// A running devnet.
pub struct DevnetHandle {
    /// The shared world.
    pub devnet: Arc<Mutex<Devnet>>,
    /// JSON-RPC address of each chain.
    pub rpc_addrs: BTreeMap<ChainId, SocketAddr>,
    /// The status server's address.
    pub status_addr: SocketAddr,
    stop: watch::Sender<bool>,
    servers: Vec<RpcServer>,
    tasks: Vec<JoinHandle<()>>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Opens the devnet and starts its servers, its clock, and (with `demo`) its demo traffic.
pub async fn start(
    config: DevnetConfig,
    ports: Ports,
    demo: bool,
) -> Result<DevnetHandle, NodeError> {
    let chains = config.chains.clone();
    let block_time = config.block_time_ms;
    let limits = RpcLimits {
        requests_per_second: config.rpc_requests_per_second,
        burst: config.rpc_requests_per_second.saturating_mul(2),
        ..RpcLimits::default()
    };
    let devnet = tokio::task::block_in_place(|| Devnet::open(config))?;
    let devnet = Arc::new(Mutex::new(devnet));
    let (stop, stopped) = watch::channel(false);
    let mut servers = Vec::new();
    let mut rpc_addrs = BTreeMap::new();
    for (i, id) in chains.iter().enumerate() {
        let port = if ports.rpc_base == 0 {
            0
        } else {
            ports.rpc_base.saturating_add(i as u16)
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let backend = Arc::new(ChainRpc::new(devnet.clone(), *id));
        let server = braid_rpc::serve(addr, backend, limits).await.map_err(|e| {
            NodeError::Io(format!(
                "cannot bind JSON-RPC for chain {id} on {addr}: {e}"
            ))
        })?;
        rpc_addrs.insert(*id, server.local_addr());
        servers.push(server);
    }
    let status_listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, ports.status)))
            .await
            .map_err(|e| {
                NodeError::Io(format!(
                    "cannot bind the status page on port {}: {e}",
                    ports.status
                ))
            })?;
    let status_addr = status_listener
        .local_addr()
        .map_err(|e| NodeError::Io(e.to_string()))?;
    let mut tasks = Vec::new();
    let router = crate::http::router(devnet.clone());
    let mut s = stopped.clone();
    tasks.push(tokio::spawn(async move {
        let shutdown = async move {
            let _ = s.wait_for(|v| *v).await;
        };
        if let Err(e) = axum::serve(status_listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("status server failed: {e}");
        }
    }));
    // the clock: step the world a few times per block, and exactly when a chain's block is due
    // (a block sealed late pushes every later one back: the next is due a block time after it)
    let world = devnet.clone();
    let mut s = stopped.clone();
    let tick = Duration::from_millis((block_time / 10).clamp(10, 100));
    tasks.push(tokio::spawn(async move {
        let mut wake = tokio::time::Instant::now();
        let mut last_due = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = s.wait_for(|v| *v) => break,
            }
            let w = world.clone();
            let result = tokio::task::spawn_blocking(move || {
                let mut d = w.lock().unwrap_or_else(|p| p.into_inner());
                d.step(now_ms()).map(|()| d.next_block_due_ms())
            })
            .await;
            let due = match result {
                Ok(Ok(due)) => due,
                Ok(Err(e)) => {
                    tracing::error!("devnet step failed, stopping the clock: {e}");
                    break;
                }
                Err(e) => {
                    tracing::error!("devnet step panicked, stopping the clock: {e}");
                    break;
                }
            };
            let now = now_ms();
            let until_due = match due {
                // a block due now that the step did not seal (a chain that waits): no busy loop
                Some(d) if d <= now && last_due == Some(d) => tick,
                Some(d) => Duration::from_millis(d.saturating_sub(now)).min(tick),
                None => tick,
            };
            last_due = due;
            wake = tokio::time::Instant::now() + until_due;
        }
    }));
    if demo {
        tasks.push(tokio::spawn(demo_traffic(
            devnet.clone(),
            chains,
            stopped.clone(),
        )));
    }
    Ok(DevnetHandle {
        devnet,
        rpc_addrs,
        status_addr,
        stop,
        servers,
        tasks,
    })
}

/// Keeps sending messages in every mode around the chains and logs per-mode latency.
async fn demo_traffic(
    devnet: Arc<Mutex<Devnet>>,
    chains: Vec<ChainId>,
    mut stopped: watch::Receiver<bool>,
) {
    let modes = [ImportKind::Precommit, ImportKind::Commit, ImportKind::Proof];
    let mut round: usize = 0;
    let mut interval = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stopped.wait_for(|v| *v) => break,
        }
        if chains.len() < 2 {
            continue;
        }
        let mode = modes[round % modes.len()];
        let source = chains[round % chains.len()];
        let dest = chains[(round + 1) % chains.len()];
        {
            let mut d = devnet.lock().unwrap_or_else(|p| p.into_inner());
            let value = U256::from(1_000_000_000_000_000u64); // 0.001 ETH
            if let Err(e) = d.demo_message((round % 5) as u32, source, dest, mode, value) {
                tracing::warn!("demo message refused: {e}");
            }
            if round % 6 == 5 {
                let c = d.counters();
                let summary: Vec<String> = c
                    .messages_executed
                    .iter()
                    .map(|(mode, n)| {
                        let avg = c.latency_ms_sum.get(mode).copied().unwrap_or(0) / (*n).max(1);
                        format!("{mode}: {n} executed, mean {:.1} s", avg as f64 / 1000.0)
                    })
                    .collect();
                if !summary.is_empty() {
                    tracing::info!(target: "braid::devnet", "latency by mode — {}", summary.join("; "));
                }
            }
        }
        round += 1;
    }
}

impl DevnetHandle {
    /// Stops the clock and the servers, and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        for s in self.servers {
            let _ = s.shutdown().await;
        }
    }
}
