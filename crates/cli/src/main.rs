//! The `braid` command.

use std::path::PathBuf;
use std::process::ExitCode;

mod bench;
mod generate;
mod relay;

use braid_node::{DevnetConfig, Ports};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "braid",
    version,
    about = "Braid: cross-rollup settlement and messaging"
)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info`, `debug`, `braid=debug`.
    #[arg(long, global = true, default_value = "info", env = "BRAID_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a local network: the settlement layer, several rollups, their operators and a relayer.
    Devnet(DevnetArgs),
    /// Relays one message by hand (for a devnet started with --no-autorelay).
    Relay(relay::RelayArgs),
    /// Runs one node of a network as its own process (the settlement layer or a chain).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Runs the relayer as its own process, following the chains and the settlement layer.
    Relayer(RelayerArgs),
    /// Runs a scenario in the simulator (virtual time, seeded faults) and writes its report.
    Sim(SimArgs),
    /// Crash-tests the role processes: starts them on loopback, sends messages in every live
    /// mode, kills processes with SIGKILL in seeded rounds and restarts them, then checks that
    /// nothing was lost or executed twice; exits non-zero otherwise.
    Chaos(ChaosArgs),
    /// Load tests: `braid bench rpc --rpc URL` measures transfer throughput and inclusion
    /// latency of any Ethereum JSON-RPC endpoint (a devnet chain, anvil, ...).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Funds fresh senders, sends signed transfers concurrently, polls blocks for their
    /// inclusion and prints throughput, inclusion latency percentiles and refusals by kind.
    Rpc(BenchRpcArgs),
}

#[derive(clap::Args)]
struct BenchRpcArgs {
    /// The endpoint (`http://127.0.0.1:8545` is the devnet's chain 901).
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    rpc: String,
    /// Transfers to send.
    #[arg(long, default_value_t = 6000)]
    txs: usize,
    /// Fresh senders to spread them over.
    #[arg(long, default_value_t = 300)]
    senders: usize,
    /// Chain id to sign for, or `auto` (ask the endpoint).
    #[arg(long, default_value = "auto")]
    chain_id: String,
    /// Prefunded key that funds the senders (default: the devnet's dev account 0 or anvil's
    /// account 0, whichever holds enough).
    #[arg(long)]
    funder_key: Option<alloy_primitives::B256>,
    /// Concurrent HTTP connections sending.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Offered load in transfers per second (default: as fast as the connections go).
    #[arg(long)]
    rate: Option<f64>,
    /// Block polling interval, ms.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// Seconds to wait for funding and for inclusion after the last send.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Seed of the senders' keys (default: from the clock, so every run has fresh senders).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(clap::Args)]
struct ChaosArgs {
    /// Seed of the kill schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Kill rounds (each role is killed once in the first ones; every third round kills two
    /// processes at once, every fourth kills during a burst of sends).
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// Chains of the network.
    #[arg(long, value_delimiter = ',', default_value = "901,902,903")]
    chains: Vec<u64>,
    /// Messages per second (over every pair of chains and mode).
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    /// Seconds to wait after the last round for every message to execute.
    #[arg(long, default_value_t = 120)]
    drain_s: u64,
    /// Where the processes keep their data (default: a fresh temporary directory, removed
    /// afterwards unless --keep).
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// Keep the temporary datadirs.
    #[arg(long)]
    keep: bool,
}

#[derive(clap::Args)]
struct SimArgs {
    /// The scenario file (TOML; see docs/simulator.md and scenarios/). Not with --generate.
    #[arg(required_unless_present = "generate")]
    scenario: Option<PathBuf>,
    /// Seed (default: the scenario's).
    #[arg(long)]
    seed: Option<u64>,
    /// Directory for report.json and report.html.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Swarm mode: run this many seeds (from --seed, default 1), each with randomised link and
    /// fault settings; stops at the first invariant violation and prints its replay command.
    #[arg(long)]
    swarm: Option<u64>,
    /// Generate this many adversarial scenarios (seeds from --seed, default 1: random chains,
    /// modes, traffic and overlapping faults of every kind) and run each, checking safety and
    /// liveness; failing seeds are listed with their replay command (and written to --out).
    #[arg(long, conflicts_with_all = ["scenario", "swarm"])]
    generate: Option<u64>,
    /// With --generate: parallel runs (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// With --generate: only these disturbances (comma-separated; `none` for none). Default:
    /// all of operator_stall, partition, drop_messages, crash, revert_batch,
    /// wrong_state_root, equivocation, replay_forgery, censor_deposits, byzantine_validators,
    /// aggregator_adversary, optimistic_adversary.
    #[arg(long, value_delimiter = ',')]
    faults: Option<Vec<String>>,
    /// With --generate: only these modes (comma-separated). Default: all six.
    #[arg(long, value_delimiter = ',')]
    modes: Option<Vec<String>>,
    /// With --generate: at most this many chains (2-8, default 8).
    #[arg(long)]
    max_chains: Option<u64>,
    /// With --generate: run every seed even after one failed.
    #[arg(long)]
    keep_going: bool,
}

#[derive(Subcommand)]
enum NodeCommand {
    /// The settlement layer: registers the network's chains on first start.
    Sl(SlNodeArgs),
    /// One chain: sequencer, storage, operator and Ethereum JSON-RPC.
    Chain(ChainNodeArgs),
}

/// Network settings shared by every process of a network (must agree between them).
#[derive(clap::Args, Clone)]
struct NetworkArgs {
    /// TOML file with `chains`, `block_time_ms`, `batch_blocks`, `sl_block_time_ms`; flags
    /// override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Chain ids of the network, comma-separated.
    #[arg(long, value_delimiter = ',')]
    chains: Option<Vec<u64>>,
    /// Block time of every chain, in ms.
    #[arg(long)]
    block_time_ms: Option<u64>,
    /// Blocks per batch.
    #[arg(long)]
    batch_blocks: Option<u64>,
    /// Settlement-layer block time, in ms.
    #[arg(long)]
    sl_block_time_ms: Option<u64>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NetworkFile {
    chains: Option<Vec<u64>>,
    block_time_ms: Option<u64>,
    batch_blocks: Option<u64>,
    sl_block_time_ms: Option<u64>,
}

impl NetworkArgs {
    fn config(&self, datadir: PathBuf) -> Result<DevnetConfig, String> {
        let file: NetworkFile = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => NetworkFile::default(),
        };
        let mut c = DevnetConfig::new(datadir);
        if let Some(v) = self.chains.clone().or(file.chains) {
            c.chains = v;
        }
        c.block_time_ms = self
            .block_time_ms
            .or(file.block_time_ms)
            .unwrap_or(c.block_time_ms);
        c.batch_blocks = self
            .batch_blocks
            .or(file.batch_blocks)
            .unwrap_or(c.batch_blocks);
        c.sl_block_time_ms = self
            .sl_block_time_ms
            .or(file.sl_block_time_ms)
            .unwrap_or(c.sl_block_time_ms);
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

#[derive(clap::Args)]
struct SlNodeArgs {
    #[command(flatten)]
    network: NetworkArgs,
    /// Directory of the SL's log.
    #[arg(long)]
    datadir: PathBuf,
    /// JSON-RPC port.
    #[arg(long, default_value_t = 8600)]
    port: u16,
}

#[derive(clap::Args)]
struct ChainNodeArgs {
    #[command(flatten)]
    network: NetworkArgs,
    /// The chain id.
    #[arg(long)]
    id: u64,
    /// Directory of the chain's store.
    #[arg(long)]
    datadir: PathBuf,
    /// Ethereum JSON-RPC port.
    #[arg(long, default_value_t = 8545)]
    port: u16,
    /// The settlement layer's URL.
    #[arg(long)]
    sl: String,
    /// Another chain of the network, `ID=URL` (repeat for each).
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<(u64, String)>,
}

#[derive(clap::Args)]
struct RelayerArgs {
    /// A chain to relay between, `ID=URL` (repeat for each).
    #[arg(long = "chain", value_parser = parse_peer, required = true)]
    chains: Vec<(u64, String)>,
    /// The settlement layer's URL.
    #[arg(long)]
    sl: String,
    /// Secret key paying for executions (default: the devnet relayer's key).
    #[arg(long)]
    key: Option<alloy_primitives::B256>,
    /// Poll interval in ms.
    #[arg(long, default_value_t = 200)]
    poll_ms: u64,
    /// Port of the relayer's JSON-RPC (`braid_messageStatus`), `/metrics` and `/health`.
    #[arg(long, default_value_t = 8700)]
    port: u16,
}

fn parse_peer(s: &str) -> Result<(u64, String), String> {
    let (id, url) = s.split_once('=').ok_or("expected ID=URL")?;
    let id = id.parse().map_err(|_| format!("bad chain id {id}"))?;
    if !url.starts_with("http://") {
        return Err("URL must start with http://".into());
    }
    Ok((id, url.to_string()))
}

#[derive(clap::Args)]
struct DevnetArgs {
    /// Directory for the redb files; a temporary directory (deleted on exit) if not given.
    /// Restarting with the same directory resumes the network.
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// Number of chains (ids 901, 902, ...).
    #[arg(long, default_value_t = 3)]
    chains: u64,
    /// Block time of every chain, in ms.
    #[arg(long, default_value_t = 1000)]
    block_time_ms: u64,
    /// Blocks per batch.
    #[arg(long, default_value_t = 5)]
    batch_blocks: u64,
    /// Gas limit of every chain's blocks.
    #[arg(long, default_value_t = 30_000_000)]
    gas_limit: u64,
    /// Sustained JSON-RPC requests per second each chain accepts (bursts of twice that; beyond
    /// it HTTP 429); 0 removes the bound.
    #[arg(long, default_value_t = 20_000)]
    rpc_rate_limit: u32,
    /// Settlement-layer block time, in ms.
    #[arg(long, default_value_t = 1000)]
    sl_block_time_ms: u64,
    /// JSON-RPC port of the first chain; chain i listens on this + i.
    #[arg(long, default_value_t = 8545)]
    rpc_port: u16,
    /// Port of the status page, `/status.json` and `/metrics`.
    #[arg(long, default_value_t = 8550)]
    status_port: u16,
    /// Do not relay messages automatically (use the `braid_messageProof` RPC to relay by hand).
    #[arg(long)]
    no_autorelay: bool,
    /// Keep sending messages in every mode and report per-mode latency.
    #[arg(long)]
    demo: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .compact()
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Devnet(args) => runtime.block_on(devnet(args)),
        Command::Relay(args) => relay::relay(args),
        Command::Node(NodeCommand::Sl(args)) => runtime.block_on(node_sl(args)),
        Command::Node(NodeCommand::Chain(args)) => runtime.block_on(node_chain(args)),
        Command::Relayer(args) => runtime.block_on(relayer(args)),
        Command::Sim(args) => sim(args),
        Command::Chaos(args) => chaos(args),
        Command::Bench(BenchCommand::Rpc(args)) => runtime.block_on(bench_rpc(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn devnet(args: DevnetArgs) -> Result<(), String> {
    let temp;
    let datadir = match args.datadir {
        Some(d) => d,
        None => {
            temp = tempfile::Builder::new()
                .prefix("braid-devnet-")
                .tempdir()
                .map_err(|e| e.to_string())?;
            temp.path().to_path_buf()
        }
    };
    let mut config = DevnetConfig::new(&datadir);
    config.chains = (0..args.chains).map(|i| 901 + i).collect();
    config.block_time_ms = args.block_time_ms;
    config.batch_blocks = args.batch_blocks;
    config.block_gas_limit = args.gas_limit;
    config.rpc_requests_per_second = args.rpc_rate_limit;
    config.sl_block_time_ms = args.sl_block_time_ms;
    config.autorelay = !args.no_autorelay;
    let ports = Ports {
        rpc_base: args.rpc_port,
        status: args.status_port,
    };
    let accounts = config.dev_accounts;
    let handle = braid_node::start(config, ports, args.demo)
        .await
        .map_err(|e| e.to_string())?;
    println!("Braid devnet — data in {}", datadir.display());
    println!();
    println!("Chains (Ethereum JSON-RPC):");
    for (id, addr) in &handle.rpc_addrs {
        println!("  chain {id}  http://{addr}");
    }
    println!(
        "Status page: http://{}/   metrics: http://{}/metrics",
        handle.status_addr, handle.status_addr
    );
    println!(
        "Messenger contract on every chain: {}",
        braid_primitives::MESSENGER_ADDRESS
    );
    println!();
    println!("Dev accounts (10 000 ETH on every chain and on the settlement layer):");
    for i in 0..accounts {
        let signer = braid_execution::TxSigner::dev(i);
        let key = braid_execution::TxSigner::dev_secret(i);
        println!(
            "  ({i}) {}  key 0x{}",
            signer.address(),
            alloy_primitives::hex::encode(key)
        );
    }
    println!();
    println!(
        "Autorelay {}. Press Ctrl-C to stop.",
        if args.no_autorelay { "off" } else { "on" }
    );
    println!();
    if tokio::signal::ctrl_c().await.is_err() {
        eprintln!("cannot listen for Ctrl-C; stopping");
    }
    println!("\nstopping…");
    handle.shutdown().await;
    println!("stopped cleanly");
    Ok(())
}

async fn bench_rpc(args: BenchRpcArgs) -> Result<(), String> {
    let mut config = bench::BenchConfig::new(&args.rpc);
    config.txs = args.txs;
    config.senders = args.senders;
    config.chain_id = match args.chain_id.as_str() {
        "auto" => None,
        id => Some(
            id.parse()
                .map_err(|_| format!("--chain-id must be a number or `auto`, got {id}"))?,
        ),
    };
    config.funder_key = args.funder_key;
    config.connections = args.connections;
    config.rate_tx_s = args.rate;
    config.poll = std::time::Duration::from_millis(args.poll_ms.max(1));
    config.timeout = std::time::Duration::from_secs(args.timeout_s);
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    config.progress = true;
    let started = std::time::Instant::now();
    let log = |line: String| eprintln!("[{:>5.1} s] {line}", started.elapsed().as_secs_f64());
    let report = bench::run(&config, &log).await.map_err(|e| e.to_string())?;
    print!("{}: {}", args.rpc, report.summary());
    Ok(())
}

async fn until_ctrl_c(what: &str, handle: braid_node::roles::RoleHandle) -> Result<(), String> {
    println!(
        "{what} listening on http://{}  (Ctrl-C to stop)",
        handle.addr
    );
    if tokio::signal::ctrl_c().await.is_err() {
        eprintln!("cannot listen for Ctrl-C; stopping");
    }
    handle.shutdown().await;
    println!("stopped cleanly");
    Ok(())
}

async fn node_sl(args: SlNodeArgs) -> Result<(), String> {
    let config = args.network.config(args.datadir)?;
    let handle = braid_node::roles::start_sl(config, args.port)
        .await
        .map_err(|e| e.to_string())?;
    until_ctrl_c("settlement layer", handle).await
}

async fn node_chain(args: ChainNodeArgs) -> Result<(), String> {
    let config = args.network.config(args.datadir)?;
    if !config.chains.contains(&args.id) {
        return Err(format!(
            "chain {} is not one of the network's chains {:?}",
            args.id, config.chains
        ));
    }
    let peers = args.peers.into_iter().collect();
    let handle = braid_node::roles::start_chain(config, args.id, args.port, args.sl, peers)
        .await
        .map_err(|e| e.to_string())?;
    until_ctrl_c(&format!("chain {}", args.id), handle).await
}

async fn relayer(args: RelayerArgs) -> Result<(), String> {
    let key = match args.key {
        Some(k) => Some(braid_execution::TxSigner::from_secret(k).map_err(|e| e.to_string())?),
        None => None,
    };
    let chains = args.chains.into_iter().collect();
    let every = std::time::Duration::from_millis(args.poll_ms.max(10));
    let handle = braid_node::roles::start_relayer(chains, args.sl, key, every, args.port)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "relayer running: JSON-RPC on http://{0}, metrics on http://{0}/metrics (Ctrl-C to stop)",
        handle.addr
    );
    if tokio::signal::ctrl_c().await.is_err() {
        eprintln!("cannot listen for Ctrl-C; stopping");
    }
    handle.shutdown().await;
    Ok(())
}

fn chaos(args: ChaosArgs) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the braid binary: {e}"))?;
    let temp = match &args.datadir {
        Some(_) => None,
        None => Some(tempfile::tempdir().map_err(|e| e.to_string())?),
    };
    let datadir = match (&args.datadir, &temp) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) => braid_node::chaos::datadir_for(t.path(), args.seed),
        (None, None) => unreachable!("a temporary directory exists when no datadir is given"),
    };
    if datadir.exists() && std::fs::read_dir(&datadir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!(
            "{} is not empty: the chaos test needs a fresh datadir (its recipients' balances are its check)",
            datadir.display()
        ));
    }
    if args.rate <= 0.0 || args.chains.len() < 2 {
        return Err("--rate must be positive and --chains must name at least two chains".into());
    }
    let mut config = braid_node::chaos::ChaosConfig::new(exe, datadir, args.seed);
    config.rounds = args.rounds;
    config.chains = args.chains.clone();
    config.rate_per_s = args.rate;
    config.drain = std::time::Duration::from_secs(args.drain_s);
    let started = std::time::Instant::now();
    let report = braid_node::chaos::run(&config, |line| {
        println!("[{:>5.1} s] {line}", started.elapsed().as_secs_f64())
    })
    .map_err(|e| e.to_string())?;
    print!("{}", braid_node::chaos::summary(&report));
    if let (Some(t), true) = (temp, args.keep) {
        println!("datadirs kept in {}", t.keep().display());
    }
    if report.ok() {
        Ok(())
    } else {
        Err("the chaos test found lost, duplicated or unmined messages, or a stalled chain".into())
    }
}

fn swarm(
    args: &SimArgs,
    path: &std::path::Path,
    scenario: &braid_sim::Scenario,
    count: u64,
) -> Result<(), String> {
    let first = args.seed.unwrap_or(1);
    let bar = indicatif::ProgressBar::new(count);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds  {elapsed_precise}  {msg}",
        )
        .map_err(|e| e.to_string())?,
    );
    let mut events = 0u64;
    let mut injected = 0usize;
    let runs = braid_sim::swarm(scenario, first, count, true, |r| {
        injected += r.injected.len();
        if let Ok(report) = &r.result {
            events += report.events_processed;
        }
        bar.set_message(format!("{events} events"));
        bar.inc(1);
    });
    bar.finish();
    let failed: Vec<&braid_sim::SwarmRun> = runs.iter().filter(|r| !r.passed()).collect();
    if failed.is_empty() {
        println!(
            "swarm: {} runs, {injected} faults injected, {events} events, no invariant violated",
            runs.len()
        );
        return Ok(());
    }
    for r in failed {
        match &r.result {
            Ok(report) => {
                for v in &report.invariant_violations {
                    eprintln!("seed {}: violation {v:?}", r.seed);
                }
            }
            Err(e) => eprintln!("seed {}: {e}", r.seed),
        }
        for f in &r.injected {
            eprintln!("seed {}: injected {f:?}", r.seed);
        }
        eprintln!(
            "replay: braid sim {} --swarm 1 --seed {}",
            path.display(),
            r.seed
        );
    }
    Err("swarm found a failing seed".into())
}

fn sim(args: SimArgs) -> Result<(), String> {
    if let Some(count) = args.generate {
        let jobs = args.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        return generate::run(generate::GenerateArgs {
            count,
            first_seed: args.seed.unwrap_or(1),
            jobs,
            faults: args.faults.as_deref(),
            modes: args.modes.as_deref(),
            max_chains: args.max_chains,
            keep_going: args.keep_going,
            out: args.out.as_deref(),
        });
    }
    let Some(path) = args.scenario.clone() else {
        return Err("a scenario file is needed (or --generate N)".into());
    };
    let scenario = braid_sim::Scenario::load(&path).map_err(|e| e.to_string())?;
    if let Some(count) = args.swarm {
        return swarm(&args, &path, &scenario, count);
    }
    let seed = args.seed.unwrap_or(scenario.seed);
    println!("running {} (seed {seed}) …", path.display());
    let bar = indicatif::ProgressBar::new(scenario.run_end_ms() / 1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} s virtual  {elapsed_precise}",
        )
        .map_err(|e| e.to_string())?,
    );
    let report =
        braid_sim::run_with_progress(&scenario, seed, &mut |now, _| bar.set_position(now / 1000))
            .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    println!(
        "{} events, {:.1} s of virtual time in {:.2} s",
        report.events_processed,
        report.virtual_duration_ms as f64 / 1000.0,
        report.wall_time_ms as f64 / 1000.0
    );
    for (mode, m) in &report.modes {
        println!(
            "  {mode:<10} sent {:>4}  executed {:>4}  latency p50 {:>6} ms  p99 {:>6} ms  settled {:>4}",
            m.sent, m.executed, m.latency_ms.p50, m.latency_ms.p99, m.settled
        );
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join("report.json");
        std::fs::write(&path, report.to_json()).map_err(|e| format!("{}: {e}", path.display()))?;
        let html = dir.join("report.html");
        std::fs::write(&html, braid_sim::render_html(&report))
            .map_err(|e| format!("{}: {e}", html.display()))?;
        println!("report: {} and {}", path.display(), html.display());
    }
    if report.invariant_violations.is_empty() {
        println!("invariants held");
        Ok(())
    } else {
        for v in &report.invariant_violations {
            eprintln!("violation: {v:?}");
        }
        Err(format!(
            "invariants violated; replay with: {}",
            report.replay
        ))
    }
}
