//! The chaos test: the role processes on loopback, traffic in every live mode, processes killed
//! with SIGKILL in seeded rounds and restarted with the same command and datadir, then a drain
//! and the checks an operator cares about — every message whose source transaction was mined
//! executed exactly once, every accepted transaction mined, every chain and the SL still
//! settling.
//!
//! The processes are started from the `braid` binary given in [`ChaosConfig::exe`]
//! (`braid node sl`, `braid node chain`, `braid relayer`); the test talks to them only over
//! JSON-RPC, as a user would. Each message goes to a fresh recipient with a value of its own, so
//! the recipient's balance on the destination says whether it executed never, once or twice.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::{SolCall, SolEvent};
use braid_execution::TxSigner;
use braid_primitives::{ChainId, IMessenger, MESSENGER_ADDRESS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::client::{call, quantity};
use crate::NodeError;

/// The live modes the chaos test sends in (mode number, name).
pub const LIVE_MODES: [(u8, &str); 3] = [(0, "precommit"), (1, "commit"), (2, "proof")];

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// The `braid` binary.
    pub exe: PathBuf,
    /// Where the processes keep their datadirs (one subdirectory each).
    pub datadir: PathBuf,
    /// Seed of the kill schedule, the victims and the traffic.
    pub seed: u64,
    /// Kill rounds (the first ones kill each role once, in turn; every third kills two
    /// processes at once; every fourth kills in the middle of a burst of sends).
    pub rounds: u32,
    /// The chains.
    pub chains: Vec<ChainId>,
    /// Messages per second, spread over every ordered pair of chains and the live modes.
    pub rate_per_s: f64,
    /// Messages sent at once in a burst round.
    pub burst: u32,
    /// How long to wait, after the last round, for every message to execute.
    pub drain: Duration,
    /// Block time of the chains.
    pub block_time_ms: u64,
    /// Block time of the SL.
    pub sl_block_time_ms: u64,
    /// Blocks per batch.
    pub batch_blocks: u64,
}

impl ChaosConfig {
    /// Defaults: chains 901–903, 2 msg/s, ten rounds, 200 ms blocks, batches of 2 blocks, a
    /// 120 s drain.
    pub fn new(exe: PathBuf, datadir: PathBuf, seed: u64) -> Self {
        Self {
            exe,
            datadir,
            seed,
            rounds: 10,
            chains: vec![901, 902, 903],
            rate_per_s: 2.0,
            burst: 40,
            drain: Duration::from_secs(120),
            block_time_ms: 200,
            sl_block_time_ms: 200,
            batch_blocks: 2,
        }
    }
}

/// A process of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// The settlement layer node.
    Sl,
    /// A chain node.
    Chain(ChainId),
    /// The relayer.
    Relayer,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Sl => f.write_str("sl"),
            Role::Chain(id) => write!(f, "chain {id}"),
            Role::Relayer => f.write_str("relayer"),
        }
    }
}

/// One kill round.
#[derive(Debug, Clone)]
pub struct Round {
    /// The processes killed (two at once in a double round).
    pub killed: Vec<Role>,
    /// Whether the kill came in the middle of a burst of sends.
    pub during_burst: bool,
    /// How long they stayed down.
    pub down_ms: u64,
}

/// Per mode: what was sent and what became of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModeTally {
    /// Send transactions a chain accepted (returned a hash for).
    pub accepted: u64,
    /// Of those, mined in their source chain.
    pub mined: u64,
    /// Of the mined ones, executed once on their destination.
    pub executed: u64,
    /// Mined, never executed.
    pub lost: u64,
    /// Executed more than once.
    pub duplicated: u64,
}

/// What the chaos test saw.
#[derive(Debug, Clone, Default)]
pub struct ChaosReport {
    /// The rounds, in order.
    pub rounds: Vec<Round>,
    /// Per mode name.
    pub modes: BTreeMap<&'static str, ModeTally>,
    /// Accepted send transactions never mined (the pool journal's promise broken), by hash.
    pub unmined: Vec<B256>,
    /// Messages mined and never executed, as `source→dest mode (tx hash)`.
    pub lost: Vec<String>,
    /// Messages executed more than once.
    pub duplicated: Vec<String>,
    /// Chains (or the SL) that stopped settling during the drain.
    pub stalled: Vec<String>,
    /// Processes restarted.
    pub restarts: u64,
}

impl ChaosReport {
    /// Whether nothing was lost, duplicated or left unmined, and everything kept settling.
    pub fn ok(&self) -> bool {
        self.unmined.is_empty()
            && self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.stalled.is_empty()
    }
}

/// A send transaction the test made.
#[derive(Debug, Clone)]
struct Sent {
    source: ChainId,
    dest: ChainId,
    mode: usize,
    recipient: Address,
    value: U256,
    hash: B256,
}

/// The processes, their commands and their ports.
struct Network {
    config: ChaosConfig,
    ports: BTreeMap<Role, u16>,
    children: BTreeMap<Role, Child>,
}

fn free_port() -> Result<u16, NodeError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| NodeError::Io(e.to_string()))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| NodeError::Io(e.to_string()))
}

impl Network {
    fn new(config: ChaosConfig) -> Result<Self, NodeError> {
        let mut ports = BTreeMap::new();
        ports.insert(Role::Sl, free_port()?);
        for id in &config.chains {
            ports.insert(Role::Chain(*id), free_port()?);
        }
        ports.insert(Role::Relayer, free_port()?);
        Ok(Self {
            config,
            ports,
            children: BTreeMap::new(),
        })
    }

    fn url(&self, role: Role) -> String {
        format!("http://127.0.0.1:{}", self.ports[&role])
    }

    fn roles(&self) -> Vec<Role> {
        self.ports.keys().copied().collect()
    }

    fn net_args(&self) -> Vec<String> {
        let c = &self.config;
        let chains: Vec<String> = c.chains.iter().map(|c| c.to_string()).collect();
        vec![
            "--chains".into(),
            chains.join(","),
            "--block-time-ms".into(),
            c.block_time_ms.to_string(),
            "--sl-block-time-ms".into(),
            c.sl_block_time_ms.to_string(),
            "--batch-blocks".into(),
            c.batch_blocks.to_string(),
        ]
    }

    fn args(&self, role: Role) -> Vec<String> {
        let dir = |name: String| self.config.datadir.join(name).display().to_string();
        match role {
            Role::Sl => {
                let mut a = vec!["node".into(), "sl".into()];
                a.extend(self.net_args());
                a.extend([
                    "--datadir".into(),
                    dir("sl".into()),
                    "--port".into(),
                    self.ports[&role].to_string(),
                ]);
                a
            }
            Role::Chain(id) => {
                let mut a = vec!["node".into(), "chain".into()];
                a.extend(self.net_args());
                a.extend([
                    "--id".into(),
                    id.to_string(),
                    "--datadir".into(),
                    dir(format!("chain-{id}")),
                    "--port".into(),
                    self.ports[&role].to_string(),
                    "--sl".into(),
                    self.url(Role::Sl),
                ]);
                for peer in self.config.chains.iter().filter(|p| **p != id) {
                    a.extend([
                        "--peer".into(),
                        format!("{peer}={}", self.url(Role::Chain(*peer))),
                    ]);
                }
                a
            }
            Role::Relayer => {
                let mut a = vec!["relayer".into()];
                for id in &self.config.chains {
                    a.extend([
                        "--chain".into(),
                        format!("{id}={}", self.url(Role::Chain(*id))),
                    ]);
                }
                a.extend([
                    "--sl".into(),
                    self.url(Role::Sl),
                    "--poll-ms".into(),
                    "50".into(),
                    "--port".into(),
                    self.ports[&role].to_string(),
                ]);
                a
            }
        }
    }

    /// Starts `role` and waits for its "running"/"listening" line.
    fn start(&mut self, role: Role) -> Result<(), NodeError> {
        let mut child = Command::new(&self.config.exe)
            .args(self.args(role))
            .env("BRAID_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                NodeError::Io(format!("cannot start {}: {e}", self.config.exe.display()))
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| NodeError::Io("no stdout".into()))?;
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !sent && (line.contains("listening on") || line.contains("running")) {
                    let _ = ready_tx.send(());
                    sent = true;
                }
            }
        });
        if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            let status = child.wait().ok();
            return Err(NodeError::Io(format!(
                "{role} did not start within 60 s (exit: {status:?}); command: braid {}",
                self.args(role).join(" ")
            )));
        }
        self.children.insert(role, child);
        Ok(())
    }

    /// SIGKILL: no shutdown of any kind.
    fn kill(&mut self, role: Role) {
        if let Some(mut c) = self.children.remove(&role) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let roles: Vec<Role> = self.children.keys().copied().collect();
        for r in roles {
            self.kill(r);
        }
    }
}

/// The traffic: per source chain one dev account, its next nonce as far as the test knows.
struct Traffic {
    urls: BTreeMap<ChainId, String>,
    chains: Vec<ChainId>,
    next_nonce: BTreeMap<ChainId, Option<u64>>,
    sent: Vec<Sent>,
    counter: u64,
    seed: u64,
}

impl Traffic {
    fn sender(&self, source: ChainId) -> TxSigner {
        let index = self.chains.iter().position(|c| *c == source).unwrap_or(0);
        TxSigner::dev(index as u32)
    }

    /// Sends the next message of the rotation; a source that is down is skipped.
    fn send_one(&mut self) {
        let n = self.counter;
        self.counter += 1;
        let k = self.chains.len() as u64;
        let pairs = k * (k - 1);
        let pair = n % pairs;
        let source = self.chains[(pair / (k - 1)) as usize];
        let others: Vec<ChainId> = self
            .chains
            .iter()
            .copied()
            .filter(|c| *c != source)
            .collect();
        let dest = others[(pair % (k - 1)) as usize];
        let mode = ((n / pairs) % LIVE_MODES.len() as u64) as usize;
        let url = self.urls[&source].clone();
        let signer = self.sender(source);
        let nonce = match self.next_nonce.get(&source).copied().flatten() {
            Some(nonce) => nonce,
            None => match call(
                &url,
                "eth_getTransactionCount",
                json!([signer.address(), "pending"]),
            )
            .and_then(|v| quantity(&v))
            {
                Ok(nonce) => nonce,
                Err(_) => return, // down
            },
        };
        let recipient = Address::from_slice(
            &keccak256(format!("braid chaos {} {n}", self.seed).as_bytes())[12..],
        );
        let value = U256::from(1_000 + n);
        let input = IMessenger::sendMessageWithModeCall {
            destChain: U256::from(dest),
            recipient,
            payload: Bytes::from_static(b"chaos"),
            mode: LIVE_MODES[mode].0,
        }
        .abi_encode();
        let Ok(raw) = signer.call(
            source,
            nonce,
            MESSENGER_ADDRESS,
            value,
            input.into(),
            300_000,
        ) else {
            return;
        };
        match call(&url, "eth_sendRawTransaction", json!([raw])) {
            Ok(v) => {
                if let Ok(hash) = serde_json::from_value::<B256>(v) {
                    self.sent.push(Sent {
                        source,
                        dest,
                        mode,
                        recipient,
                        value,
                        hash,
                    });
                    self.next_nonce.insert(source, Some(nonce + 1));
                }
            }
            // down, or our nonce view is stale: ask the chain next time
            Err(_) => {
                self.next_nonce.insert(source, None);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The last batch of `chain` the SL executed, as the SL node reports it (`None`: no answer).
fn executed_batches(sl: &str, chain: ChainId) -> Option<u64> {
    let view = call(sl, "sl_view", json!([chain])).ok()?;
    Some(
        view["batches"]
            .as_array()?
            .iter()
            .filter(|b| b[1] == "executed")
            .filter_map(|b| b[0].as_u64())
            .max()
            .unwrap_or(0),
    )
}

fn balance(url: &str, who: Address) -> Option<U256> {
    let v = call(url, "eth_getBalance", json!([who, "latest"])).ok()?;
    serde_json::from_value(v).ok()
}

/// Whether the send transaction `hash` was mined on `url`: `Some(true)` mined and succeeded,
/// `Some(false)` mined and failed, `None` not mined (or the chain does not answer).
fn mined(url: &str, hash: &B256) -> Option<bool> {
    let r = call(url, "eth_getTransactionReceipt", json!([hash])).ok()?;
    if r.is_null() {
        return None;
    }
    let status = r["status"].as_str().map(|s| s.ends_with('1'));
    let sent_log = r["logs"].as_array().is_some_and(|logs| {
        logs.iter().any(|l| {
            l["topics"][0].as_str().and_then(|t| t.parse::<B256>().ok())
                == Some(IMessenger::MessageSent::SIGNATURE_HASH)
        })
    });
    Some(status.unwrap_or(false) && sent_log)
}

/// Runs the chaos test. `progress` gets one line per step.
pub fn run(config: &ChaosConfig, mut progress: impl FnMut(&str)) -> Result<ChaosReport, NodeError> {
    if config.chains.len() < 2 {
        return Err(NodeError::Config(
            "the chaos test needs at least two chains".into(),
        ));
    }
    std::fs::create_dir_all(&config.datadir)
        .map_err(|e| NodeError::Io(format!("{}: {e}", config.datadir.display())))?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut net = Network::new(config.clone())?;
    net.start(Role::Sl)?;
    for id in &config.chains {
        net.start(Role::Chain(*id))?;
    }
    net.start(Role::Relayer)?;
    progress(&format!(
        "network up: SL {}, chains {:?}, relayer {} (datadirs in {})",
        net.url(Role::Sl),
        config.chains,
        net.url(Role::Relayer),
        config.datadir.display()
    ));
    let urls: BTreeMap<ChainId, String> = config
        .chains
        .iter()
        .map(|id| (*id, net.url(Role::Chain(*id))))
        .collect();
    let traffic = Arc::new(Mutex::new(Traffic {
        urls: urls.clone(),
        chains: config.chains.clone(),
        next_nonce: BTreeMap::new(),
        sent: Vec::new(),
        counter: 0,
        seed: config.seed,
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (traffic, stop) = (traffic.clone(), stop.clone());
        let every = Duration::from_secs_f64(1.0 / config.rate_per_s.max(0.01));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                lock(&traffic).send_one();
                std::thread::sleep(every);
            }
        })
    };
    let mut report = ChaosReport::default();
    let roles = net.roles();
    let mut result = Ok(());
    for r in 0..config.rounds {
        std::thread::sleep(Duration::from_millis(rng.gen_range(1_000..3_000)));
        let first = if (r as usize) < roles.len() {
            roles[r as usize]
        } else {
            roles[rng.gen_range(0..roles.len())]
        };
        let mut killed = vec![first];
        if r % 3 == 2 {
            let others: Vec<Role> = roles.iter().copied().filter(|x| *x != first).collect();
            killed.push(others[rng.gen_range(0..others.len())]);
        }
        let during_burst = r % 4 == 1;
        if during_burst {
            let mut t = lock(&traffic);
            for _ in 0..config.burst / 2 {
                t.send_one();
            }
        }
        for v in &killed {
            net.kill(*v);
        }
        if during_burst {
            let mut t = lock(&traffic);
            for _ in 0..config.burst / 2 {
                t.send_one();
            }
        }
        let down_ms = rng.gen_range(200..1_500);
        std::thread::sleep(Duration::from_millis(down_ms));
        for v in &killed {
            if let Err(e) = net.start(*v) {
                result = Err(e);
                break;
            }
            report.restarts += 1;
        }
        let names: Vec<String> = killed.iter().map(|k| k.to_string()).collect();
        progress(&format!(
            "round {}/{}: SIGKILL {}{}, down {down_ms} ms, restarted ({} sends so far)",
            r + 1,
            config.rounds,
            names.join(" + "),
            if during_burst { " during a burst" } else { "" },
            lock(&traffic).sent.len()
        ));
        report.rounds.push(Round {
            killed,
            during_burst,
            down_ms,
        });
        if result.is_err() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    result?;
    let sent = std::mem::take(&mut lock(&traffic).sent);
    progress(&format!(
        "traffic stopped: {} sends accepted; draining (up to {} s)",
        sent.len(),
        config.drain.as_secs()
    ));
    drain(&net, config, &sent, &urls, &mut report, &mut progress);
    Ok(report)
}

/// Waits until every accepted send is mined and every mined message executed (or the drain
/// ends), then tallies, and checks that every chain kept settling on the SL.
fn drain(
    net: &Network,
    config: &ChaosConfig,
    sent: &[Sent],
    urls: &BTreeMap<ChainId, String>,
    report: &mut ChaosReport,
    progress: &mut impl FnMut(&str),
) {
    let sl = net.url(Role::Sl);
    let settled_before: BTreeMap<ChainId, Option<u64>> = config
        .chains
        .iter()
        .map(|c| (*c, executed_batches(&sl, *c)))
        .collect();
    let deadline = Instant::now() + config.drain;
    let mut last_note = Instant::now();
    // per send: mined (Some(ok)) and executed count (0, 1, 2 = more than once)
    let mut state: Vec<(Option<bool>, u8)> = vec![(None, 0); sent.len()];
    loop {
        for (s, st) in sent.iter().zip(state.iter_mut()) {
            if st.0.is_none() {
                st.0 = mined(&urls[&s.source], &s.hash);
            }
            if st.0 == Some(true) && st.1 != 1 {
                if let Some(b) = balance(&urls[&s.dest], s.recipient) {
                    st.1 = if b.is_zero() {
                        0
                    } else if b == s.value {
                        1
                    } else {
                        2
                    };
                }
            }
        }
        let waiting = state
            .iter()
            .filter(|(m, e)| m.is_none() || (*m == Some(true) && *e == 0))
            .count();
        if waiting == 0 || Instant::now() >= deadline {
            break;
        }
        if last_note.elapsed() >= Duration::from_secs(10) {
            progress(&format!("draining: {waiting} messages not executed yet"));
            last_note = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    for (s, (m, e)) in sent.iter().zip(&state) {
        let tally = report.modes.entry(LIVE_MODES[s.mode].1).or_default();
        tally.accepted += 1;
        let what = format!(
            "{}→{} {} ({})",
            s.source, s.dest, LIVE_MODES[s.mode].1, s.hash
        );
        match m {
            None => report.unmined.push(s.hash),
            Some(false) => {} // mined and failed: no message was sent
            Some(true) => {
                tally.mined += 1;
                match e {
                    0 => {
                        tally.lost += 1;
                        report.lost.push(what);
                    }
                    1 => tally.executed += 1,
                    _ => {
                        tally.duplicated += 1;
                        report.duplicated.push(what);
                    }
                }
            }
        }
    }
    // batches keep settling with no traffic (empty blocks still make batches)
    std::thread::sleep(Duration::from_millis(
        (config.sl_block_time_ms + config.block_time_ms * config.batch_blocks) * 10,
    ));
    for c in &config.chains {
        let after = executed_batches(&sl, *c);
        match (settled_before[c], after) {
            (Some(b), Some(a)) if a > b => {}
            (b, a) => report.stalled.push(format!(
                "chain {c}: last SL-executed batch {b:?} at the drain's start, {a:?} at its end"
            )),
        }
    }
}

/// The report as text: one line per round, a table per mode, then what went wrong.
pub fn summary(report: &ChaosReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} rounds, {} restarts",
        report.rounds.len(),
        report.restarts
    );
    let _ = writeln!(
        out,
        "{:<10} {:>9} {:>7} {:>9} {:>5} {:>11}",
        "mode", "accepted", "mined", "executed", "lost", "duplicated"
    );
    for (mode, t) in &report.modes {
        let _ = writeln!(
            out,
            "{mode:<10} {:>9} {:>7} {:>9} {:>5} {:>11}",
            t.accepted, t.mined, t.executed, t.lost, t.duplicated
        );
    }
    for h in report.unmined.iter().take(10) {
        let _ = writeln!(out, "accepted but never mined: {h}");
    }
    for l in report.lost.iter().take(10) {
        let _ = writeln!(out, "lost: {l}");
    }
    for d in report.duplicated.iter().take(10) {
        let _ = writeln!(out, "executed twice: {d}");
    }
    for s in &report.stalled {
        let _ = writeln!(out, "stopped settling: {s}");
    }
    let _ = writeln!(
        out,
        "{}",
        if report.ok() {
            "chaos: nothing lost, nothing duplicated, everything settling"
        } else {
            "chaos: FAILED"
        }
    );
    out
}

/// A datadir for a chaos run under `parent` named after the seed.
pub fn datadir_for(parent: &Path, seed: u64) -> PathBuf {
    parent.join(format!("braid-chaos-{seed}"))
}
