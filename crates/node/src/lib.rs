//! Braid's live shell: the same sans-IO cores as the simulator, driven by tokio and the wall clock.
//!
//! [`world::Devnet`] holds the settlement layer (logged to redb through `braid-sl-store`), every
//! chain (sequencer + redb store), one operator per chain and the relayer, and advances them all
//! in [`world::Devnet::step`]. [`run::start`] wraps it with a clock, one Ethereum JSON-RPC server
//! per chain ([`rpc::ChainRpc`] over `braid-rpc`), a status page with Prometheus metrics
//! ([`http`]) and optional demo traffic. [`roles`] runs each role as its own process.
//!
//! Every datadir (the devnet's, each role process's) carries an identity file naming its
//! network, role and chain; [`datadir`] refuses to start on one that is not the process's own
//! or whose databases are gone.

pub mod chaos;
pub mod client;
pub mod datadir;
pub mod http;
pub mod roles;
pub mod rpc;
pub mod run;
pub mod world;

pub use run::{start, DevnetHandle, Ports};
pub use world::{Devnet, DevnetConfig};

/// Errors of the live shell.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A configuration the devnet cannot run with.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Files, sockets.
    #[error("I/O: {0}")]
    Io(String),
    /// A datadir this process cannot trust (another network, role or chain, lost databases).
    #[error(transparent)]
    Datadir(Box<datadir::DatadirError>),
    /// A chain store failed.
    #[error(transparent)]
    Store(#[from] braid_store::StoreError),
    /// The SL log failed.
    #[error(transparent)]
    SlStore(#[from] braid_sl_store::SlStoreError),
    /// A sequencer refused (restore or revert).
    #[error(transparent)]
    Sequencer(#[from] braid_sequencer::SequencerError),
    /// An operator refused a batch.
    #[error(transparent)]
    Operator(#[from] braid_operator::OperatorError),
    /// The wiring between the cores failed (a roll-back the SL requires was refused).
    #[error(transparent)]
    Driver(#[from] braid_driver::DriverError),
}

impl From<datadir::DatadirError> for NodeError {
    fn from(e: datadir::DatadirError) -> Self {
        Self::Datadir(Box::new(e))
    }
}
