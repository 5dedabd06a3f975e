//! Braid's roles, wired once.
//!
//! The protocol cores (`braid-sequencer`, `braid-operator`, `braid-relayer`, `braid-settlement`,
//! ...) are sans-IO state machines. What one core's output causes in another — a sealed batch
//! reaching the operator, an SL revert rolling a sequencer back, a source's revert dooming the
//! blocks that imported its void roots, finality reaching the sequencer — is the *wiring*. This
//! crate holds it, once, so that the simulator, the devnet and the role processes run the same
//! rules: a fix verified in the simulator is the fix users run.
//!
//! - [`ChainRole`]: a chain node (sequencer + operator + its [`SlMirror`]), fed SL events,
//!   imports, transactions and time; it returns [`ChainEffect`]s for its shell to apply
//!   (persist, announce, roll storage back, report).
//! - [`RelayerRole`]: the relayer (its core, deadlines, execution submission, nonce and
//!   restart rules), asking its destinations through [`Destinations`]; it returns
//!   [`RelayerEffect`]s.
//! - [`route`]: which role needs which SL event.
//! - [`SlMirror`]: the SL as an operator sees it, built from the events it received.
//!
//! No I/O, clock or randomness here: shells pass time in and own transport and storage.

mod chain;
mod mirror;
mod relayer;
pub mod route;

pub use chain::{
    ChainEffect, ChainRole, ImportRefusal, NoTree, RollbackCause, SlNode, WatchedSources,
};
pub use mirror::SlMirror;
pub use relayer::{
    submit_to_role, Destinations, LocalChain, LocalChains, RelayerCounters, RelayerEffect,
    RelayerRole, SubmitRefusal,
};

use braid_primitives::{BatchNumber, ChainId};

/// Errors of the driver: a core refused what the wiring asked of it.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A chain node was assembled from a sequencer and an operator of different chains.
    #[error("sequencer of chain {sequencer} paired with the operator of chain {operator}")]
    ChainMismatch {
        /// The sequencer's chain.
        sequencer: ChainId,
        /// The operator's chain.
        operator: ChainId,
    },
    /// The operator refused a sealed batch.
    #[error("operator: {0}")]
    Operator(#[from] braid_operator::OperatorError),
    /// The sequencer could not roll back as the SL requires.
    #[error("chain {chain}: revert_to({last_valid_batch}): {error}")]
    Rollback {
        /// The chain.
        chain: ChainId,
        /// The batch it had to roll back to.
        last_valid_batch: BatchNumber,
        /// The sequencer's refusal.
        error: braid_sequencer::SequencerError,
    },
}
