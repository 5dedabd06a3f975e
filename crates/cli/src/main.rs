//! The `braid` command.

use std::path::PathBuf;
use std::process::ExitCode;

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
