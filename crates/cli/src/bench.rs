//! `braid bench rpc`: a JSON-RPC load generator for any Ethereum endpoint (the devnet, anvil).
//!
//! It funds fresh senders from a prefunded account, pre-signs EIP-1559 transfers, sends them
//! over several keep-alive HTTP connections, timestamps every send, and polls blocks
//! (`eth_getBlockByNumber` with transaction hashes) to see when each transaction is included.
//! The report: sent, accepted, included, throughput (included ÷ the span from the first send to
//! the last inclusion seen), inclusion latency percentiles and refusals by kind.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_consensus::TxEip1559;
use alloy_primitives::{keccak256, Address, Bytes, TxKind, B256, U256};
use braid_execution::TxSigner;
use serde_json::{json, Value};

/// Anvil's first default account (mnemonic "test test … junk"), prefunded by anvil and hardhat.
pub const ANVIL_KEY_0: B256 =
    alloy_primitives::b256!("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");

/// Gas of a plain transfer.
const TRANSFER_GAS: u64 = 21_000;
/// Most funding transactions the funder has in flight (the devnet's pool holds 64 per sender).
const FUNDING_WINDOW: u64 = 48;

/// What `braid bench rpc` does.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The endpoint, `http://host:port`.
    pub url: String,
    /// Transfers to send.
    pub txs: usize,
    /// Fresh senders they are spread over (round-robin, nonces in order).
    pub senders: usize,
    /// The chain id to sign for; `None` asks the endpoint (`eth_chainId`).
    pub chain_id: Option<u64>,
    /// The prefunded key paying for the senders; `None` tries the devnet's dev account 0 and
    /// anvil's account 0 and takes the first with enough balance.
    pub funder_key: Option<B256>,
    /// Concurrent senders (HTTP connections).
    pub connections: usize,
    /// Offered load: send transfer `i` no earlier than `i / rate` seconds after the first;
    /// `None` sends as fast as the connections go.
    pub rate_tx_s: Option<f64>,
    /// Block polling interval.
    pub poll: Duration,
    /// How long to wait for inclusion after the last send (and for funding to be mined).
    pub timeout: Duration,
    /// After the last send, stop waiting once no transfer was included for this long (those
    /// behind a refused nonce never are).
    pub idle: Duration,
    /// Seed of the senders' keys; a fresh seed gives fresh accounts (nonce 0).
    pub seed: u64,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl BenchConfig {
    /// Defaults for `url`: 6 000 transfers from 300 senders over 32 connections, 50 ms polling,
    /// 120 s timeout (15 s without an inclusion after the last send), a time-based seed.
    pub fn new(url: impl Into<String>) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            url: url.into(),
            txs: 6_000,
            senders: 300,
            chain_id: None,
            funder_key: None,
            connections: 32,
            rate_tx_s: None,
            poll: Duration::from_millis(50),
            timeout: Duration::from_secs(120),
            idle: Duration::from_secs(15),
            seed,
            progress: false,
        }
    }
}

/// Why a bench run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Bad parameters.
    #[error("invalid bench configuration: {0}")]
    Config(String),
    /// Nothing answers at the URL.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// The connection error.
        reason: String,
    },
    /// The endpoint answered with an HTTP error status (429: its rate limit).
    #[error("{method}: HTTP {status} from the endpoint")]
    Http {
        /// The JSON-RPC method.
        method: String,
        /// The HTTP status.
        status: u16,
    },
    /// The endpoint answered with a JSON-RPC error (a refused transaction, an unknown method).
    #[error("{method} refused: {message} (code {code})")]
    Refused {
        /// The JSON-RPC method.
        method: String,
        /// The JSON-RPC error code.
        code: i64,
        /// The JSON-RPC error message.
        message: String,
    },
    /// The answer was not the JSON-RPC the method returns.
    #[error("{method}: malformed answer: {reason}")]
    Malformed {
        /// The JSON-RPC method.
        method: String,
        /// What was wrong.
        reason: String,
    },
    /// Something did not happen in time.
    #[error("timed out after {secs} s: {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        secs: u64,
    },
    /// No known key has the balance the run needs.
    #[error("no funder: none of {tried:?} holds {needed} wei on this chain; pass --funder-key")]
    NoFunder {
        /// The addresses tried.
        tried: Vec<Address>,
        /// The balance needed.
        needed: U256,
    },
    /// A key or transaction could not be signed.
    #[error("signing failed: {0}")]
    Sign(String),
}

impl BenchError {
    /// A short label for counting refused sends by kind (numbers and hashes removed).
    pub fn kind(&self) -> String {
        match self {
            Self::Unreachable { .. } => "connection failed".into(),
            Self::Http { status: 429, .. } => "HTTP 429 (rate limited)".into(),
            Self::Http { status, .. } => format!("HTTP {status}"),
            Self::Refused { message, .. } => {
                let words: Vec<String> = message
                    .split_whitespace()
                    .map(|w| {
                        if !w.chars().any(|c| c.is_ascii_digit()) {
                            return w.to_string();
                        }
                        // keep the punctuation around a number: "(9522" -> "(N"
                        let core = w.trim_matches(|c: char| !c.is_ascii_alphanumeric());
                        let start = w.find(core).unwrap_or(0);
                        let (before, rest) = w.split_at(start);
                        let after = rest.get(core.len()..).unwrap_or("");
                        format!("{before}N{after}")
                    })
                    .collect();
                format!("refused: {}", words.join(" "))
            }
            Self::Malformed { .. } => "malformed answer".into(),
            Self::Timeout { .. } => "request timed out".into(),
            other => other.to_string(),
        }
    }
}

/// Nearest-rank percentile (`p` in 0..=100) of sorted values; `None` when empty.
pub fn percentile(sorted: &[u64], p: u32) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (u64::from(p.min(100)) * sorted.len() as u64).div_ceil(100);
    let i = (rank.max(1) - 1) as usize;
    sorted.get(i).copied()
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// The endpoint's chain id.
    pub chain_id: u64,
    /// Transfers sent.
    pub sent: usize,
    /// Transfers the endpoint accepted (returned a hash for).
    pub accepted: usize,
    /// Accepted transfers seen in a block.
    pub included: usize,
    /// From the first send to the last send.
    pub send_span_ms: u64,
    /// From the first send to the last inclusion seen.
    pub span_ms: u64,
    /// `included` per second of `span_ms`.
    pub throughput_tx_s: f64,
    /// Inclusion latency (send → block seen) percentiles, in ms.
    pub latency_ms_p50: u64,
    /// 90th percentile.
    pub latency_ms_p90: u64,
    /// 99th percentile.
    pub latency_ms_p99: u64,
    /// Refused sends by kind.
    pub errors: BTreeMap<String, usize>,
    /// Blocks that included the run's transfers: (number, the run's transfers in it).
    pub blocks: Vec<(u64, usize)>,
}

impl BenchReport {
    /// The human-readable summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "chain {}: sent {}, accepted {}, included {} ({} blocks)\n\
             throughput {:.0} tx/s (included over {:.2} s from the first send to the last inclusion; sends took {:.2} s)\n\
             inclusion latency p50 {:.2} s, p90 {:.2} s, p99 {:.2} s\n",
            self.chain_id,
            self.sent,
            self.accepted,
            self.included,
            self.blocks.len(),
            self.throughput_tx_s,
            self.span_ms as f64 / 1000.0,
            self.send_span_ms as f64 / 1000.0,
            self.latency_ms_p50 as f64 / 1000.0,
            self.latency_ms_p90 as f64 / 1000.0,
            self.latency_ms_p99 as f64 / 1000.0,
        );
        let per_block: Vec<String> = self
            .blocks
            .iter()
            .map(|(n, c)| format!("#{n}: {c}"))
            .collect();
        s.push_str(&format!("per block: {}\n", per_block.join(", ")));
        if self.errors.is_empty() {
            s.push_str("errors: none\n");
        } else {
            for (kind, n) in &self.errors {
                s.push_str(&format!("errors: {n} × {kind}\n"));
            }
        }
        s
    }
}

/// A JSON-RPC endpoint over a pooled keep-alive HTTP client.
#[derive(Clone)]
struct Rpc {
    client: reqwest::Client,
    url: String,
}

impl Rpc {
    fn new(url: &str, connections: usize) -> Result<Self, BenchError> {
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(BenchError::Config(format!(
                "the URL must start with http://, got {url}"
            )));
        }
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| BenchError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            url: url.to_string(),
        })
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, BenchError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| self.transport_error(method, &e))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(BenchError::Http {
                method: method.into(),
                status,
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(method, &e))?;
        let mut v: Value = serde_json::from_slice(&bytes).map_err(|e| BenchError::Malformed {
            method: method.into(),
            reason: e.to_string(),
        })?;
        if let Some(err) = v.get("error") {
            return Err(BenchError::Refused {
                method: method.into(),
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message")
                    .to_string(),
            });
        }
        match v.get_mut("result") {
            Some(r) => Ok(r.take()),
            None => Err(BenchError::Malformed {
                method: method.into(),
                reason: "no result".into(),
            }),
        }
    }

    fn transport_error(&self, method: &str, e: &reqwest::Error) -> BenchError {
        if e.is_timeout() {
            BenchError::Timeout {
                what: format!("{method} at {}", self.url),
                secs: 30,
            }
        } else {
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                reason = format!("{reason}: {s}");
                source = s.source();
            }
            BenchError::Unreachable {
                url: self.url.clone(),
                reason,
            }
        }
    }

    async fn quantity(&self, method: &str, params: Value) -> Result<u128, BenchError> {
        let v = self.call(method, params).await?;
        parse_quantity(method, &v)
    }

    async fn balance(&self, a: Address) -> Result<U256, BenchError> {
        let v = self
            .call("eth_getBalance", json!([a.to_string(), "latest"]))
            .await?;
        v.as_str()
            .and_then(|s| U256::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .ok_or_else(|| BenchError::Malformed {
                method: "eth_getBalance".into(),
                reason: format!("not a quantity: {v}"),
            })
    }

    async fn nonce(&self, a: Address, tag: &str) -> Result<u64, BenchError> {
        let n = self
            .quantity("eth_getTransactionCount", json!([a.to_string(), tag]))
            .await?;
        Ok(n as u64)
    }

    /// The transaction hashes of block `n`, `None` if it does not exist yet.
    async fn block_tx_hashes(&self, n: u64) -> Result<Option<Vec<B256>>, BenchError> {
        let v = self
            .call("eth_getBlockByNumber", json!([format!("0x{n:x}"), false]))
            .await?;
        if v.is_null() {
            return Ok(None);
        }
        let malformed = |reason: &str| BenchError::Malformed {
            method: "eth_getBlockByNumber".into(),
            reason: reason.into(),
        };
        let txs = v
            .get("transactions")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("no transactions array"))?;
        txs.iter()
            .map(|t| {
                t.as_str()
                    .and_then(|s| s.parse::<B256>().ok())
                    .ok_or_else(|| malformed("a transaction hash is not 32 bytes of hex"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

fn parse_quantity(method: &str, v: &Value) -> Result<u128, BenchError> {
    v.as_str()
        .and_then(|s| u128::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .ok_or_else(|| BenchError::Malformed {
            method: method.into(),
            reason: format!("not a quantity: {v}"),
        })
}

/// A pre-signed transfer.
struct Prepared {
    raw: Bytes,
    hash: B256,
}

/// Fees every transaction of the run pays: a cap well above the current base fee so that the
/// base fee rising under full blocks does not strand them.
#[derive(Debug, Clone, Copy)]
struct Fees {
    chain_id: u64,
    max_fee: u128,
    tip: u128,
}

async fn fees(rpc: &Rpc, chain_id: u64) -> Result<Fees, BenchError> {
    let block = rpc
        .call("eth_getBlockByNumber", json!(["latest", false]))
        .await?;
    let base = match block.get("baseFeePerGas") {
        Some(v) => parse_quantity("eth_getBlockByNumber", v)?,
        None => rpc.quantity("eth_gasPrice", json!([])).await?,
    };
    let tip = 1_000_000_000u128;
    Ok(Fees {
        chain_id,
        max_fee: base.max(1_000_000_000).saturating_mul(10) + tip,
        tip,
    })
}

fn transfer(
    signer: &TxSigner,
    nonce: u64,
    to: Address,
    value: U256,
    fees: Fees,
) -> Result<Prepared, BenchError> {
    let raw = signer
        .sign_eip1559(TxEip1559 {
            chain_id: fees.chain_id,
            nonce,
            gas_limit: TRANSFER_GAS,
            max_fee_per_gas: fees.max_fee,
            max_priority_fee_per_gas: fees.tip,
            to: TxKind::Call(to),
            value,
            access_list: Default::default(),
            input: Bytes::new(),
        })
        .map_err(|e| BenchError::Sign(e.to_string()))?;
    let hash = keccak256(&raw);
    Ok(Prepared { raw, hash })
}

/// The `i`-th sender of a run seeded with `seed`.
fn sender(seed: u64, i: usize) -> Result<TxSigner, BenchError> {
    let mut preimage = b"braid bench sender".to_vec();
    preimage.extend_from_slice(&seed.to_be_bytes());
    preimage.extend_from_slice(&(i as u64).to_be_bytes());
    TxSigner::from_secret(keccak256(&preimage)).map_err(|e| BenchError::Sign(e.to_string()))
}

async fn pick_funder(rpc: &Rpc, key: Option<B256>, needed: U256) -> Result<TxSigner, BenchError> {
    let candidates = match key {
        Some(k) => vec![k],
        None => vec![TxSigner::dev_secret(0), ANVIL_KEY_0],
    };
    let mut tried = Vec::new();
    for k in candidates {
        let signer = TxSigner::from_secret(k).map_err(|e| BenchError::Sign(e.to_string()))?;
        if rpc.balance(signer.address()).await? >= needed {
            return Ok(signer);
        }
        tried.push(signer.address());
    }
    Err(BenchError::NoFunder { tried, needed })
}

/// Funds `senders` with `amount` each from `funder`, at most [`FUNDING_WINDOW`] transactions
/// in flight, and waits until every funding transaction is mined.
async fn fund(
    rpc: &Rpc,
    funder: &TxSigner,
    senders: &[TxSigner],
    amount: U256,
    fees: Fees,
    timeout: Duration,
    log: &dyn Fn(String),
) -> Result<(), BenchError> {
    let first = rpc.nonce(funder.address(), "pending").await?;
    let end = first + senders.len() as u64;
    let deadline = Instant::now() + timeout;
    let mut next = first;
    let mut mined = rpc.nonce(funder.address(), "latest").await?;
    while mined < end {
        while next < end && next < mined + FUNDING_WINDOW {
            let to = senders[(next - first) as usize].address();
            let tx = transfer(funder, next, to, amount, fees)?;
            rpc.call(
                "eth_sendRawTransaction",
                json!([format!("0x{}", alloy_primitives::hex::encode(&tx.raw))]),
            )
            .await?;
            next += 1;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout {
                what: format!(
                    "funding the senders ({} of {} funding transactions mined)",
                    mined.saturating_sub(first),
                    senders.len()
                ),
                secs: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now_mined = rpc.nonce(funder.address(), "latest").await?;
        if now_mined != mined {
            log(format!(
                "funding: {} of {} senders funded",
                now_mined.saturating_sub(first),
                senders.len()
            ));
        }
        mined = now_mined;
    }
    Ok(())
}

/// Reads the blocks after `polled` up to the head, stamps the run's transfers in them with the
/// time they were seen, and returns (block, the run's transfers in it) for each block that had
/// any.
async fn poll_blocks(
    rpc: &Rpc,
    polled: &mut u64,
    index: &HashMap<B256, usize>,
    start: Instant,
    included_at: &mut [Option<Duration>],
) -> Result<Vec<(u64, usize)>, BenchError> {
    let head = rpc.quantity("eth_blockNumber", json!([])).await? as u64;
    let mut found = Vec::new();
    while *polled < head {
        let Some(hashes) = rpc.block_tx_hashes(*polled + 1).await? else {
            break;
        };
        let seen = start.elapsed();
        *polled += 1;
        let mut ours = 0;
        for h in hashes {
            if let Some(slot) = index.get(&h).and_then(|&i| included_at.get_mut(i)) {
                if slot.is_none() {
                    *slot = Some(seen);
                    ours += 1;
                }
            }
        }
        if ours > 0 {
            found.push((*polled, ours));
        }
    }
    Ok(found)
}

/// What the sending tasks record per transaction.
#[derive(Default)]
struct Sends {
    /// Send start per transaction (offset from the run's start), if sent.
    sent_at: Vec<Option<Duration>>,
    /// Whether the endpoint accepted it.
    accepted: Vec<bool>,
    errors: BTreeMap<String, usize>,
    /// The first refusal's full text, for the log.
    first_error: Option<String>,
}

/// Runs the benchmark; `log` receives progress lines (funding, polling).
pub async fn run(config: &BenchConfig, log: &dyn Fn(String)) -> Result<BenchReport, BenchError> {
    if config.txs == 0 || config.senders == 0 || config.senders > config.txs {
        return Err(BenchError::Config(
            "--txs and --senders must be positive, with no more senders than transactions".into(),
        ));
    }
    if config
        .rate_tx_s
        .is_some_and(|r| !(r.is_finite() && r > 0.0))
    {
        return Err(BenchError::Config(
            "--rate must be a positive number".into(),
        ));
    }
    if config.connections == 0 || config.connections > 1024 {
        return Err(BenchError::Config(
            "--connections must be in 1..=1024".into(),
        ));
    }
    let rpc = Rpc::new(&config.url, config.connections)?;
    let chain_id = match config.chain_id {
        Some(id) => id,
        None => rpc.quantity("eth_chainId", json!([])).await? as u64,
    };
    let fees = fees(&rpc, chain_id).await?;
    let per_sender = config.txs.div_ceil(config.senders) as u64;
    let value = U256::from(1u64);
    let per_tx_cost = U256::from(TRANSFER_GAS) * U256::from(fees.max_fee) + value;
    let amount = per_tx_cost * U256::from(per_sender);
    let needed = (amount + per_tx_cost) * U256::from(config.senders as u64);
    let funder = pick_funder(&rpc, config.funder_key, needed).await?;
    let senders = (0..config.senders)
        .map(|i| sender(config.seed, i))
        .collect::<Result<Vec<_>, _>>()?;
    log(format!(
        "chain {chain_id}: funding {} senders from {} (max fee {} gwei)",
        senders.len(),
        funder.address(),
        fees.max_fee / 1_000_000_000
    ));
    fund(&rpc, &funder, &senders, amount, fees, config.timeout, log).await?;

    // pre-sign round-robin: nonce 0 of every sender, then nonce 1, …
    let sink = funder.address();
    let mut prepared = Vec::with_capacity(config.txs);
    'rounds: for nonce in 0..per_sender {
        for s in &senders {
            if prepared.len() == config.txs {
                break 'rounds;
            }
            prepared.push(transfer(s, nonce, sink, value, fees)?);
        }
    }
    let index: HashMap<B256, usize> = prepared
        .iter()
        .enumerate()
        .map(|(i, p)| (p.hash, i))
        .collect();
    let prepared = Arc::new(prepared);
    log(format!(
        "signed {} transfers; sending over {} connections",
        prepared.len(),
        config.connections
    ));

    let bar = if config.progress {
        let bar = indicatif::ProgressBar::new(config.txs as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} included  {elapsed_precise}  {msg}",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    let start_block = rpc.quantity("eth_blockNumber", json!([])).await? as u64;
    let sends = Arc::new(Mutex::new(Sends {
        sent_at: vec![None; config.txs],
        accepted: vec![false; config.txs],
        ..Sends::default()
    }));
    let next = Arc::new(AtomicUsize::new(0));
    let sent_count = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..config.connections {
        let rpc = rpc.clone();
        let prepared = prepared.clone();
        let sends = sends.clone();
        let next = next.clone();
        let bar = bar.clone();
        let sent_count = sent_count.clone();
        let rate = config.rate_tx_s;
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(tx) = prepared.get(i) else { break };
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                }
                let hex = format!("0x{}", alloy_primitives::hex::encode(&tx.raw));
                let at = start.elapsed();
                let result = rpc.call("eth_sendRawTransaction", json!([hex])).await;
                let mut s = sends.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(slot) = s.sent_at.get_mut(i) {
                    *slot = Some(at);
                }
                match result {
                    Ok(_) => {
                        if let Some(slot) = s.accepted.get_mut(i) {
                            *slot = true;
                        }
                    }
                    Err(e) => {
                        *s.errors.entry(e.kind()).or_default() += 1;
                        if s.first_error.is_none() {
                            s.first_error = Some(e.to_string());
                        }
                    }
                }
                drop(s);
                let sent = sent_count.fetch_add(1, Ordering::Relaxed) + 1;
                if sent.is_multiple_of(100) {
                    bar.set_message(format!("{sent} sent"));
                }
            }
        }));
    }

    // poll blocks until every accepted transfer is included, or the timeout after the last send
    let mut included_at: Vec<Option<Duration>> = vec![None; config.txs];
    let mut included = 0usize;
    let mut blocks = Vec::new();
    let mut polled = start_block;
    let mut sending_done_at: Option<Instant> = None;
    let mut last_progress = Instant::now();
    let mut poll_errors = 0usize;
    loop {
        // a failed poll (a rate limit, a slow answer) is retried; one that never succeeds ends
        // the run through the timeouts below
        match poll_blocks(&rpc, &mut polled, &index, start, &mut included_at).await {
            Ok(new) => {
                for (n, ours) in new {
                    included += ours;
                    blocks.push((n, ours));
                    last_progress = Instant::now();
                }
                bar.set_position(included as u64);
            }
            Err(BenchError::Unreachable { url, reason })
                if included == 0 && polled == start_block =>
            {
                return Err(BenchError::Unreachable { url, reason });
            }
            Err(e) => {
                poll_errors += 1;
                if poll_errors == 1 {
                    log(format!("block polling failed (retrying): {e}"));
                }
            }
        }
        if sending_done_at.is_none() && workers.iter().all(|w| w.is_finished()) {
            sending_done_at = Some(Instant::now());
            last_progress = last_progress.max(Instant::now());
        }
        if let Some(done) = sending_done_at {
            let accepted = sends
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .accepted
                .iter()
                .filter(|a| **a)
                .count();
            // transfers stuck behind a refused nonce never come: stop after a quiet spell
            if included >= accepted
                || done.elapsed() > config.timeout
                || last_progress.elapsed() > config.idle
            {
                break;
            }
        }
        tokio::time::sleep(config.poll).await;
    }
    if poll_errors > 0 {
        log(format!("{poll_errors} block polls failed and were retried"));
    }
    bar.finish_and_clear();
    for w in workers {
        let _ = w.await;
    }
    let sends = Arc::try_unwrap(sends)
        .map_err(|_| BenchError::Config("a sending task outlived the run".into()))?
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(e) = &sends.first_error {
        log(format!("first refusal: {e}"));
    }

    let first_send = sends.sent_at.iter().flatten().min().copied();
    let last_send = sends.sent_at.iter().flatten().max().copied();
    let last_inclusion = included_at.iter().flatten().max().copied();
    let mut latencies: Vec<u64> = included_at
        .iter()
        .zip(&sends.sent_at)
        .filter_map(|(inc, sent)| Some(inc.as_ref()?.saturating_sub(*sent.as_ref()?)))
        .map(|d| d.as_millis() as u64)
        .collect();
    latencies.sort_unstable();
    let span_ms = match (first_send, last_inclusion) {
        (Some(a), Some(b)) => b.saturating_sub(a).as_millis() as u64,
        _ => 0,
    };
    let accepted = sends.accepted.iter().filter(|a| **a).count();
    let report = BenchReport {
        chain_id,
        sent: sends.sent_at.iter().filter(|t| t.is_some()).count(),
        accepted,
        included,
        send_span_ms: match (first_send, last_send) {
            (Some(a), Some(b)) => b.saturating_sub(a).as_millis() as u64,
            _ => 0,
        },
        span_ms,
        throughput_tx_s: if span_ms == 0 {
            0.0
        } else {
            included as f64 * 1000.0 / span_ms as f64
        },
        latency_ms_p50: percentile(&latencies, 50).unwrap_or(0),
        latency_ms_p90: percentile(&latencies, 90).unwrap_or(0),
        latency_ms_p99: percentile(&latencies, 99).unwrap_or(0),
        errors: sends.errors,
        blocks,
    };
    if report.included < report.accepted {
        log(report.summary());
        return Err(BenchError::Timeout {
            what: format!(
                "{} of {} accepted transfers were never included",
                report.accepted - report.included,
                report.accepted
            ),
            secs: sending_done_at.map_or(0, |t| t.elapsed().as_secs()),
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 99), Some(7));
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 90), Some(90));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&v, 100), Some(100));
        assert_eq!(percentile(&v, 0), Some(1));
        assert_eq!(percentile(&[10, 20, 30], 50), Some(20));
    }

    #[test]
    fn refusals_are_counted_by_kind_without_numbers() {
        let e = BenchError::Refused {
            method: "eth_sendRawTransaction".into(),
            code: -32000,
            message: "nonce 5 is more than 64 ahead of the account nonce 0".into(),
        };
        assert_eq!(
            e.kind(),
            "refused: nonce N is more than N ahead of the account nonce N"
        );
        let e = BenchError::Http {
            method: "eth_sendRawTransaction".into(),
            status: 429,
        };
        assert_eq!(e.kind(), "HTTP 429 (rate limited)");
        let e = BenchError::Refused {
            method: "eth_sendRawTransaction".into(),
            code: -32000,
            message: "transaction pool is full (9522 transactions)".into(),
        };
        assert_eq!(
            e.kind(),
            "refused: transaction pool is full (N transactions)"
        );
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_a_typed_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let mut config = BenchConfig::new(format!("http://{addr}"));
        config.txs = 4;
        config.senders = 2;
        match run(&config, &|_| {}).await {
            Err(BenchError::Unreachable { url, .. }) => assert_eq!(url, format!("http://{addr}")),
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }

    /// A few transfers against an in-process one-chain devnet with 100 ms blocks: every one is
    /// included and the statistics are consistent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_transfer_is_included_on_a_devnet_chain() {
        let dir = tempfile::tempdir().unwrap();
        let mut devnet = braid_node::DevnetConfig::new(dir.path());
        devnet.chains = vec![901];
        devnet.block_time_ms = 100;
        devnet.sl_block_time_ms = 100;
        let ports = braid_node::Ports {
            rpc_base: 0,
            status: 0,
        };
        let handle = braid_node::start(devnet, ports, false).await.unwrap();
        let url = format!("http://{}", handle.rpc_addrs[&901]);
        let mut config = BenchConfig::new(url);
        config.txs = 60;
        config.senders = 7;
        config.connections = 4;
        config.timeout = Duration::from_secs(20);
        let report = run(&config, &|_| {}).await;
        handle.shutdown().await;
        let report = report.unwrap();
        assert_eq!(report.chain_id, 901);
        assert_eq!(
            (report.sent, report.accepted, report.included),
            (60, 60, 60)
        );
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.blocks.iter().map(|(_, n)| n).sum::<usize>(), 60);
        assert!(report.latency_ms_p50 > 0);
        assert!(report.latency_ms_p50 <= report.latency_ms_p90);
        assert!(report.latency_ms_p90 <= report.latency_ms_p99);
        assert!(report.latency_ms_p99 <= report.span_ms);
        assert!(report.throughput_tx_s > 0.0);
    }
}
