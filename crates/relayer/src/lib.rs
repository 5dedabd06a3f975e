//! Braid's relayer core: a sans-IO state machine that watches chains and the settlement layer and
//! executes every cross-chain message in the mode it asked for.
//!
//! The shell feeds the relayer what it observes ([`RelayerInput`]): every block of every watched
//! chain with its receipts, every batch the chains' sequencers seal, and the settlement layer's
//! events ([`Relayer::observe_sl`]). The relayer answers with [`RelayerAction`]s: roots to import
//! into a destination chain and messages to execute there (with their proofs). Signing and
//! submitting is the shell's job ([`execute_message_calldata`] builds the calldata).
//!
//! # What it mirrors, and checks
//! - Each source chain's message tree, rebuilt from the `MessageSent` logs of its blocks (leaves
//!   appended in nonce order). After every block the mirrored root must equal the header's
//!   `localRoot` and its size the header's `messageCount`; a block that disagrees (a source lying
//!   about its LocalRoot, or receipts that do not match the header) is rejected with
//!   [`RelayerError::LocalRootMismatch`] and changes nothing.
//! - Sealed batch headers: a header's `chainBatchRoot` must be the mirrored root at its
//!   `messageCount` and the `localRoot` of its last block.
//! - The settlement layer's global MessageRoot tree, rebuilt from `BatchExecuted` events with
//!   leaves [`message_root_leaf`]; every event's root and every SL block's root must match.
//!
//! # Per mode
//! - `precommit`: imports the LocalRoot of the message's source block as soon as the block is seen;
//! - `commit`: imports the ChainBatchRoot of the message's batch once it is committed on the SL;
//! - `optimistic`: imports the ChainBatchRoot of the message's batch once the batch's end state
//!   is final on the SL (`BatchProven`: its optimistic proposal outlived the challenge window);
//! - `proof`: imports the SL MessageRoot (of the SL block in which the batch executed, or any
//!   already-imported later one) once the message's batch executed;
//! - `aggregated` (chains under the shared aggregation tree, [`AggregationView`]): imports the hash
//!   of the lowest tree node above both the source and the destination, at the first checkpoint
//!   at or after the message's block whose level the aggregator proved
//!   ([`RelayerInput::TreeLevelProven`]); the proof climbs from the source's checkpoint block to
//!   that node. The tree settles the import itself: no settlement-layer round trip.
//!
//! Each distinct root is imported into a destination at most once. The relayer emits
//! [`RelayerAction::Execute`] together with the import (the destination applies a block's imports
//! before its transactions, so both land in one block), then again only after the shell reports
//! the transaction dropped ([`RelayerInput::ExecuteDropped`]) and a destination block shows the
//! import — never after the message is seen executed.
//!
//! # Retries, fallback, undeliverable messages
//! There is no attempt limit. The first retry after a drop is immediate; later ones back off
//! exponentially ([`RelayerConfig::retry_base_ms`] doubling up to [`RelayerConfig::retry_max_ms`])
//! on the time the shell passes in ([`RelayerInput::Tick`]). A `proof` root — the SL MessageRoot
//! once the message's source batch executed — satisfies every mode (the destination messenger
//! accepts a root at least as strong as the message asks for, [`ImportKind::satisfies`]): a
//! retried message, and one whose own mode has no root (no certificate, no final proposal, no
//! proven tree level), is re-targeted to it, so every message whose source batch settled can be
//! delivered. A message that can never be delivered is reported once
//! ([`RelayerError::Undeliverable`]) with a typed [`Undeliverable`] reason (the sender's fault or
//! the system's); [`Relayer::delivery`] tells where any message is and what it waits for.
//!
//! # Reverts
//! On `BatchesReverted` of a chain the relayer forgets the chain's blocks from `first_block` on:
//! as a source (its mirrored tree is truncated, messages sent in those blocks are forgotten —
//! the re-sequenced chain sends them again) and as a destination (imports and executions seen in
//! those blocks are forgotten; the re-sequenced chain re-includes them).
//!
//! # Resynchronisation
//! Feeds may lose blocks, batch headers and SL blocks, and a chain may fork under the relayer
//! (an equivocating sequencer, or a re-sequenced chain whose revert it missed). The relayer never
//! stalls on that; it asks the shell for what it misses:
//! - a block beyond the next one (a gap) is not accepted, and the chain's canonical blocks from
//!   the next one are asked for ([`RelayerAction::Backfill`]); a copy of a block held (a backfill
//!   overlapping the feed) is ignored;
//! - a block whose parent is not the block held at the height before rolls the mirror of the
//!   chain back: the block held there and the later ones are forgotten as in a revert (messages
//!   sent in them are forgotten and re-learned from the blocks that replace them; imports and
//!   executions seen in them likewise; the settlement layer's facts about batches are kept) and
//!   the canonical blocks from that height are asked for. A deeper fork rolls back one more
//!   block per answer (a request with a lower `from` is never rate-limited);
//! - a batch header whose last block is not held yet, or is held with another hash, is kept
//!   pending and retried after every block (the next block of a fork rolls the mirror back; a
//!   header alone never does, so a stale header of a reverted branch cannot undo canonical
//!   blocks);
//! - an executed batch whose header is missing makes the global MessageRoot mirror wait (and its
//!   header is asked for with a backfill) instead of stopping; a gap in the SL heights seen by
//!   [`Relayer::observe_sl_block`] asks for the missed SL blocks
//!   ([`RelayerAction::BackfillSl`]), and an SL block seen before is ignored.
//!
//! Requests not answered are asked again from where the mirror then stands, at most once per
//! [`RelayerConfig::backfill_retry_ms`] of the shell's clock ([`RelayerInput::Tick`]). The
//! relayer stays sans-IO: the shell answers with ordinary [`RelayerInput::SourceBlock`],
//! [`RelayerInput::BatchSealed`] and SL inputs.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Bytes, B256};
use alloy_sol_types::{SolCall, SolEvent};
use std::sync::Arc;

use braid_aggregator::{AggregatorState, KeccakHasher, TreeShape, TreeSnapshot};
use braid_execution::{
    aggregated_proof, single_level_proof, two_level_proof, ImportKey, TxReceipt,
};
use braid_merkle::{ExtensionProof, MerkleError, MessageTree};
use braid_primitives::aggregation::{
    self, common_ancestor_level, leaf_hash, node_hash, tree_depth, tree_has_right, tree_nodes_at,
    AggregatedPath, PathStep,
};
use braid_primitives::{
    message_root_leaf, BatchHeader, BatchNumber, Block, BlockHash, BlockHeader, BlockNumber,
    ChainId, IMessenger, ImportKind, ImportedRoot, Message, MessageId, MessageProof,
    MESSENGER_ADDRESS, SETTLEMENT_LAYER_CHAIN_ID,
};
use braid_settlement::SlEvent;

/// Errors the relayer reports: inputs it rejects (they change no state) and inconsistencies it
/// detects in what the chains and the settlement layer claim.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RelayerError {
    /// A block or batch of a chain the relayer does not watch.
    #[error("chain {0} is not watched by this relayer")]
    UnknownChain(ChainId),
    /// A block that does not follow the last block seen of its chain.
    #[error("chain {chain}: expected block {expected}, got block {got}")]
    BlockOutOfOrder {
        /// The chain.
        chain: ChainId,
        /// The number the next block must have.
        expected: BlockNumber,
        /// The number it had.
        got: BlockNumber,
    },
    /// A block whose parent hash is not the hash of the previous block seen.
    #[error("chain {chain}: block {block} does not extend the block before it")]
    ParentMismatch {
        /// The chain.
        chain: ChainId,
        /// The block.
        block: BlockNumber,
    },
    /// A `MessageSent` log that does not fit the mirrored tree (wrong nonce, leaf or mode).
    #[error("chain {chain}: bad MessageSent log in block {block}: {reason}")]
    BadMessageLog {
        /// The chain.
        chain: ChainId,
        /// The block.
        block: BlockNumber,
        /// What is wrong.
        reason: String,
    },
    /// The block header's LocalRoot (or message count) differs from the mirrored message tree.
    #[error(
        "chain {chain}: block {block} claims LocalRoot {claimed} over {claimed_count} messages, \
         its messages give {mirrored} over {mirrored_count}"
    )]
    LocalRootMismatch {
        /// The chain.
        chain: ChainId,
        /// The block.
        block: BlockNumber,
        /// The header's `localRoot`.
        claimed: B256,
        /// The header's `messageCount`.
        claimed_count: u64,
        /// The mirrored root after the block's messages.
        mirrored: B256,
        /// The mirrored size after the block's messages.
        mirrored_count: u64,
    },
    /// A sealed batch header that does not match the blocks and messages seen.
    #[error("chain {chain}: batch {batch} header is inconsistent: {reason}")]
    BadBatchHeader {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// What is wrong.
        reason: String,
    },
    /// An executed batch whose header the relayer never saw: its MessageRoot leaf is unknown
    /// and the mirror of the global tree stops.
    #[error("no header for executed batch {batch} of chain {chain}; MessageRoot mirror stopped")]
    MissingBatchHeader {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
    },
    /// The mirrored global MessageRoot disagrees with the settlement layer; the mirror stops.
    #[error(
        "MessageRoot mirror diverged at size {size}: SL says {sl_root}, mirror has {mirrored}"
    )]
    MessageRootMismatch {
        /// Size of the global tree at the disagreement.
        size: u64,
        /// The root the SL reported.
        sl_root: B256,
        /// The mirrored root.
        mirrored: B256,
    },
    /// A Merkle operation failed (an internal inconsistency).
    #[error("merkle: {0}")]
    Merkle(String),
    /// A message the relayer can never deliver (reported once; it stays in
    /// [`Relayer::pending_messages`] with [`DeliveryState::Undeliverable`]).
    #[error("message {id} cannot be delivered: {reason}")]
    Undeliverable {
        /// The message.
        id: MessageId,
        /// Why.
        reason: Undeliverable,
    },
}

/// Whose fault it is that a message cannot be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// The sender asked for something no relayer can do (e.g. a destination that does not exist).
    Sender,
    /// The system failed (the relayer's view of the chains or of the SL broke).
    System,
}

/// Why a message can never be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Undeliverable {
    /// The message names a destination chain that no watched chain is (sender's fault).
    #[error("destination chain {dest} is not a chain this relayer serves")]
    UnknownDestination {
        /// The destination the message names.
        dest: ChainId,
    },
    /// The relayer's mirror of the SL MessageRoot diverged or missed a leaf, so it can build no
    /// `proof` proof, and the message's own mode has no root either (system's fault).
    #[error("the MessageRoot mirror stopped and the message's mode has no other root")]
    MessageRootDiverged,
}

impl Undeliverable {
    /// Whose fault it is.
    pub fn fault(&self) -> Fault {
        match self {
            Undeliverable::UnknownDestination { .. } => Fault::Sender,
            Undeliverable::MessageRootDiverged => Fault::System,
        }
    }
}

/// What a message that is neither executed nor undeliverable waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WaitReason {
    /// The sealed batch holding its source block was not seen yet.
    #[error("waiting for its source batch to be sealed")]
    BatchNotSealed,
    /// Its source batch is not committed on the SL yet (`commit` mode).
    #[error("waiting for its source batch to be committed on the SL")]
    BatchNotCommitted,
    /// Its source batch's end state is not final on the SL yet (`optimistic` mode).
    #[error("waiting for its source batch's end state to be final on the SL")]
    BatchNotProven,
    /// No block at or after its source block is certified L2-final yet (`qc` mode).
    #[error("waiting for a certified block at or after its source block")]
    BlockNotCertified,
    /// No tree checkpoint covering it is proven to the level it needs and settleable yet
    /// (`aggregated` mode).
    #[error("waiting for the aggregation tree to prove a checkpoint covering it")]
    TreeNotProven,
    /// Its source batch has not executed on the SL yet (`proof` mode, or the fallback of a mode
    /// with no root).
    #[error("waiting for its source batch to execute on the SL")]
    BatchNotExecuted,
    /// The root it needs was asked to be imported and is not seen on the destination yet.
    #[error("waiting for its root to be imported on the destination")]
    ImportPending,
    /// An execution transaction is in flight.
    #[error("execution submitted")]
    ExecutionInFlight,
    /// Its last execution was dropped; the next one is due at `retry_at_ms`.
    #[error("execution dropped {drops} times; next attempt at {retry_at_ms} ms")]
    Backoff {
        /// When the next execution is due (shell time, ms).
        retry_at_ms: u64,
        /// Executions dropped so far.
        drops: u32,
    },
    /// A withdrawal to the settlement layer: claimed there by its recipient, not relayed.
    #[error("a withdrawal, claimed on the settlement layer")]
    ClaimedOnSettlementLayer,
}

/// Where a message is, and why it is not executed yet ([`Relayer::delivery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Executed in destination block `dest_block`.
    Executed {
        /// The destination block.
        dest_block: BlockNumber,
    },
    /// Not executed yet, for this reason.
    Waiting(WaitReason),
    /// It can never be delivered.
    Undeliverable(Undeliverable),
}

impl From<MerkleError> for RelayerError {
    fn from(e: MerkleError) -> Self {
        RelayerError::Merkle(e.to_string())
    }
}

/// The shared aggregation tree, as the relayer needs it for `aggregated` messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregationView {
    /// The chains under the tree, in tree order (a chain's index is its leaf position).
    pub chains: Vec<ChainId>,
    /// Blocks per checkpoint: checkpoint `i` ends at block `i * checkpoint_blocks`.
    pub checkpoint_blocks: u64,
    /// The SL's aggregator timeout: once no root was accepted for this long, the SL settles no
    /// checkpoint past the accepted one any more (the tree chains exit), so the relayer stops
    /// importing them and moves their messages to stronger roots. `None`: never.
    pub aggregator_timeout_ms: Option<u64>,
}

impl AggregationView {
    /// The leaf position of `chain`, if it is under the tree.
    pub fn position(&self, chain: ChainId) -> Option<u32> {
        aggregation::tree_position(&self.chains, chain)
    }

    /// Whether `import`, an `aggregated` import by `importer`, is void once `source` reverted
    /// its blocks from `first_block` on ([`aggregation::import_voided_by`]).
    pub fn import_voided_by(
        &self,
        importer: ChainId,
        import: &ImportedRoot,
        source: ChainId,
        first_block: BlockNumber,
    ) -> bool {
        match (self.position(importer), self.position(source)) {
            (Some(i), Some(s)) => {
                aggregation::import_voided_by(i, import, s, self.checkpoint_blocks, first_block)
            }
            _ => false,
        }
    }

    /// The checkpoint of `dest`'s next block.
    fn dest_checkpoint(&self, dest: &ChainView) -> u64 {
        let next = dest.blocks.last_key_value().map_or(0, |(n, _)| n + 1);
        self.checkpoint_of(next)
    }

    /// The first checkpoint whose block is `block` or later (checkpoint 0 is genesis, so at
    /// least 1).
    pub fn checkpoint_of(&self, block: BlockNumber) -> u64 {
        block.div_ceil(self.checkpoint_blocks.max(1)).max(1)
    }
}

/// Most tree checkpoints whose snapshot the relayer keeps (the oldest are dropped; a message
/// still waiting on one moves to a later checkpoint).
const KEPT_TREE_CHECKPOINTS: usize = 128;
/// Checkpoints below the last accepted root whose snapshot the relayer keeps (for executions
/// retried against imports of them).
const KEPT_BELOW_ACCEPTED: u64 = 8;

fn tree_depth_of(agg: &AggregationView) -> u8 {
    tree_depth(agg.chains.len() as u32)
}

/// Whether every node hash of `snapshot` follows from its children's hashes and its previous
/// hash, and the snapshot has the tree's shape.
fn snapshot_consistent(agg: &AggregationView, snapshot: &TreeSnapshot) -> bool {
    let Ok(chains) = u32::try_from(agg.chains.len()) else {
        return false;
    };
    if snapshot.block_hashes.len() != agg.chains.len()
        || snapshot.nodes.len() != usize::from(tree_depth(chains))
    {
        return false;
    }
    for (row, level) in snapshot.nodes.iter().zip(1u8..) {
        if row.len() != tree_nodes_at(chains, level) as usize {
            return false;
        }
        let child = |i: u32| -> Option<B256> {
            if level == 1 {
                snapshot
                    .block_hashes
                    .get(i as usize)
                    .map(|h| leaf_hash(i, *h))
            } else {
                snapshot.nodes[usize::from(level) - 2]
                    .get(i as usize)
                    .map(|n| n.hash)
            }
        };
        for (n, index) in row.iter().zip(0u32..) {
            let Some(left) = child(2 * index) else {
                return false;
            };
            let right = if tree_has_right(chains, level, index) {
                match child(2 * index + 1) {
                    Some(r) => Some(r),
                    None => return false,
                }
            } else {
                None
            };
            if node_hash(level, index, left, right, n.prev) != n.hash {
                return false;
            }
        }
    }
    true
}

/// Relayer parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayerConfig {
    /// Chains the relayer watches (as sources and destinations).
    pub chains: Vec<ChainId>,
    /// Delay before the second retry of a dropped execution (the first is immediate); each
    /// later retry waits twice as long, up to [`RelayerConfig::retry_max_ms`].
    pub retry_base_ms: u64,
    /// Longest delay between two retries of a message's execution.
    pub retry_max_ms: u64,
    /// Send a message's first execution together with the import it needs (both land in one
    /// destination block) instead of waiting to see the import landed.
    pub pipeline: bool,
    /// The shared aggregation tree, if the chains use `aggregated` mode.
    pub aggregation: Option<AggregationView>,
    /// How long an unanswered [`RelayerAction::Backfill`] waits before it is asked again, by the
    /// shell's clock ([`RelayerInput::Tick`]).
    pub backfill_retry_ms: u64,
}

impl RelayerConfig {
    /// Watches `chains`, retrying dropped executions with a backoff from 500 ms up to 16 s,
    /// pipelining on, backfills asked again after 1 s.
    pub fn new(chains: Vec<ChainId>) -> Self {
        Self {
            chains,
            retry_base_ms: 500,
            retry_max_ms: 16_000,
            pipeline: true,
            aggregation: None,
            backfill_retry_ms: 1_000,
        }
    }

    /// The same, following the aggregation tree `view` for `aggregated` messages.
    pub fn with_aggregation(mut self, view: AggregationView) -> Self {
        self.aggregation = Some(view);
        self
    }

    /// The same, executing only once the import is seen landed.
    pub fn without_pipelining(mut self) -> Self {
        self.pipeline = false;
        self
    }

    /// The same, with retry delays from `base_ms` doubling up to `max_ms`.
    pub fn with_retry_backoff(mut self, base_ms: u64, max_ms: u64) -> Self {
        self.retry_base_ms = base_ms;
        self.retry_max_ms = max_ms.max(base_ms);
        self
    }

    /// Delay before the next execution of a message whose `drops`-th execution was dropped: none
    /// after the first drop, then `retry_base_ms` doubling each time, capped at `retry_max_ms`.
    pub fn retry_delay_ms(&self, drops: u32) -> u64 {
        if drops <= 1 {
            return 0;
        }
        let doublings = (drops - 2).min(63);
        self.retry_base_ms
            .saturating_mul(1u64 << doublings)
            .min(self.retry_max_ms)
    }
}

/// A fact from the settlement layer the relayer needs (see [`SlFact::from_event`]).
// Short-lived values handed from the shell to the core; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlFact {
    /// A batch was committed.
    BatchCommitted {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
    },
    /// A batch's end state became final (proof verified, or optimistic proposal final).
    BatchProven {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
    },
    /// A batch executed and its leaf was appended to the global tree.
    BatchExecuted {
        /// The chain.
        chain: ChainId,
        /// The batch.
        batch: BatchNumber,
        /// Index of its leaf in the global tree.
        leaf_index: u64,
        /// The MessageRoot after appending it.
        message_root: B256,
        /// The batch header as committed, if the shell has it; otherwise the header from
        /// [`RelayerInput::BatchSealed`] is used.
        header: Option<BatchHeader>,
    },
    /// Batches `from..` of a chain were reverted; its blocks from `first_block` on are void.
    BatchesReverted {
        /// The chain.
        chain: ChainId,
        /// First reverted batch.
        from: BatchNumber,
        /// First void block.
        first_block: BlockNumber,
    },
    /// The SL accepted the aggregation tree's root at `checkpoint`.
    RootAccepted {
        /// The checkpoint.
        checkpoint: u64,
        /// The root hash.
        root: B256,
    },
    /// An SL block was produced.
    SlBlock {
        /// SL height.
        height: u64,
        /// The MessageRoot after it.
        message_root: B256,
        /// Size of the global tree.
        message_root_size: u64,
    },
}

impl SlFact {
    /// The fact an SL event carries for the relayer, if any.
    pub fn from_event(ev: &SlEvent) -> Option<Self> {
        Some(match ev {
            SlEvent::BatchCommitted { chain, batch, .. } => SlFact::BatchCommitted {
                chain: *chain,
                batch: *batch,
            },
            SlEvent::BatchProven { chain, batch, .. } => SlFact::BatchProven {
                chain: *chain,
                batch: *batch,
            },
            SlEvent::BatchExecuted {
                chain,
                batch,
                leaf_index,
                message_root,
            } => SlFact::BatchExecuted {
                chain: *chain,
                batch: *batch,
                leaf_index: *leaf_index,
                message_root: *message_root,
                header: None,
            },
            SlEvent::BatchesReverted {
                chain,
                from,
                first_block,
                ..
            } => SlFact::BatchesReverted {
                chain: *chain,
                from: *from,
                first_block: *first_block,
            },
            SlEvent::RootAccepted {
                checkpoint, root, ..
            } => SlFact::RootAccepted {
                checkpoint: *checkpoint,
                root: *root,
            },
            SlEvent::SlBlock {
                height,
                message_root,
                message_root_size,
                ..
            } => SlFact::SlBlock {
                height: *height,
                message_root: *message_root,
                message_root_size: *message_root_size,
            },
            _ => return None,
        })
    }
}

/// What the shell observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayerInput {
    /// A block of a watched chain, with the receipts of its transactions. Blocks of a chain
    /// should arrive in order, starting with a block whose messages are the chain's first
    /// (genesis); a gap or a fork is resynchronised with [`RelayerAction::Backfill`].
    SourceBlock {
        /// The block.
        block: Block,
        /// Its receipts, in transaction order.
        receipts: Vec<TxReceipt>,
    },
    /// A batch sealed by a watched chain's sequencer (after its last block was fed).
    BatchSealed {
        /// The batch header.
        header: BatchHeader,
    },
    /// A settlement-layer fact.
    Sl(SlFact),
    /// The execution transaction the shell submitted for `id` was refused or dropped. The
    /// message is retried after a backoff measured on the time of the last
    /// [`RelayerInput::Tick`].
    ExecuteDropped {
        /// The message.
        id: MessageId,
    },
    /// The execution transaction for `id` is gone through no fault of the message: a
    /// roll-back of the destination discarded or withdrew it. Retried at once, without the
    /// backoff a refusal earns (a destination reverted twice must not push its messages past
    /// their deadlines).
    ExecuteUndone {
        /// The message.
        id: MessageId,
    },
    /// Shell time, in ms (a shell without ticks gets only the immediate first retry of a
    /// dropped execution). Executions whose backoff ended are retried, and a
    /// [`RelayerAction::Backfill`] still unanswered after [`RelayerConfig::backfill_retry_ms`]
    /// is asked again. Earlier times than one already seen are ignored.
    Tick {
        /// Now.
        now_ms: u64,
    },
    /// The destination refused to queue an import the relayer asked for; it is asked again on
    /// a later input.
    ImportDropped {
        /// The destination.
        dest: ChainId,
        /// The refused import.
        root: ImportedRoot,
    },
    /// Block `height` of `chain` is L2-final: validators certified it with a quorum certificate
    /// (and the certificate is available). `qc`-mode messages may use its LocalRoot.
    Certified {
        /// The source chain.
        chain: ChainId,
        /// The certified block's height.
        height: BlockNumber,
        /// Its hash: a certificate for a block the relayer does not follow (one a revert
        /// replaced, or one it has not seen) is ignored.
        block_hash: BlockHash,
    },
    /// The aggregator proved level `level` of the tree at `checkpoint` (every node up to that
    /// level): node hashes of those levels may be imported. `snapshot` is the tree at the
    /// checkpoint; only its levels up to `level` are used.
    TreeLevelProven {
        /// The checkpoint.
        checkpoint: u64,
        /// The highest level proven.
        level: u8,
        /// The tree's block hashes and node hashes at the checkpoint.
        snapshot: Arc<TreeSnapshot>,
    },
}

/// What the relayer wants done.
// Short-lived values handed from the core to the shell; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayerAction {
    /// Queue `root` as an import (system transaction) on `dest`.
    Import {
        /// The destination chain.
        dest: ChainId,
        /// The root to import.
        root: ImportedRoot,
    },
    /// Submit `executeMessage(message, proof)` on `dest` ([`execute_message_calldata`]).
    Execute {
        /// The destination chain.
        dest: ChainId,
        /// The message.
        message: Message,
        /// Its proof against a root `dest` imported.
        proof: MessageProof,
    },
    /// Post the quorum certificate of block `height` of `chain` to the SL (postconfirmation):
    /// a `qc` import of its LocalRoot settles only once the SL verified it.
    Postconfirm {
        /// The source chain.
        chain: ChainId,
        /// The certified block.
        height: BlockNumber,
    },
    /// The relayer's mirror of `chain` has a hole or was rolled back: send the chain's canonical
    /// blocks from `from` to its head, in order, as [`RelayerInput::SourceBlock`]s (with their
    /// receipts), and the sealed batch headers of the batches ending at or after `from` as
    /// [`RelayerInput::BatchSealed`] after their last block. Asked again (from where the mirror
    /// then stands) while blocks are still missing, at most once per
    /// [`RelayerConfig::backfill_retry_ms`] unless a rollback lowers `from`.
    Backfill {
        /// The chain.
        chain: ChainId,
        /// The first block wanted.
        from: BlockNumber,
    },
    /// SL blocks `from_height..=to_height` never reached [`Relayer::observe_sl_block`] (a gap
    /// in the SL heights seen): send their events again, one call per block. Asked again while
    /// some are missing, at most once per [`RelayerConfig::backfill_retry_ms`].
    BackfillSl {
        /// The first missing SL block.
        from_height: u64,
        /// The last missing SL block.
        to_height: u64,
    },
    /// An input was rejected or an inconsistency detected.
    Error(RelayerError),
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    /// Sent in source block `at_block`; its root is not in the destination yet.
    Sent {
        /// The source block.
        at_block: BlockNumber,
    },
    /// The root it needs is in the destination; no execution is in flight.
    Imported,
    /// An execution transaction was handed to the shell.
    Submitted,
    /// Executed in destination block `dest_block`.
    Executed {
        /// The destination block.
        dest_block: BlockNumber,
    },
}

/// A message the relayer carries, for status pages and RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// The message.
    pub message: Message,
    /// The mode it asked for.
    pub mode: ImportKind,
    /// The source block that sent it.
    pub source_block: BlockNumber,
    /// Where it is.
    pub status: MessageStatus,
    /// Execution transactions handed to the shell so far.
    pub attempts: u32,
}

/// ABI calldata of `IMessenger.executeMessage(message, proof)`.
pub fn execute_message_calldata(message: &Message, proof: &MessageProof) -> Bytes {
    IMessenger::executeMessageCall {
        message: message.clone(),
        proof: proof.clone(),
    }
    .abi_encode()
    .into()
}

/// What the relayer keeps of a block.
#[derive(Debug, Clone)]
struct BlockInfo {
    hash: BlockHash,
    local_root: B256,
    message_count: u64,
    /// The full header, kept for checkpoint blocks of tree chains (an `aggregated` proof
    /// carries it).
    header: Option<BlockHeader>,
}

/// A watched chain, as source and as destination.
#[derive(Debug, Clone, Default)]
struct ChainView {
    tree: MessageTree,
    blocks: BTreeMap<BlockNumber, BlockInfo>,
    headers: BTreeMap<BatchNumber, BatchHeader>,
    committed: BTreeSet<BatchNumber>,
    /// Batches whose end state is final (proven).
    proven: BTreeSet<BatchNumber>,
    /// Executed batches and their leaf index in the global tree.
    executed: BTreeMap<BatchNumber, u64>,
    /// Roots asked to be imported into this chain.
    requested: BTreeMap<ImportKey, ImportedRoot>,
    /// Roots seen imported by this chain's blocks, with the block.
    landed: BTreeMap<ImportKey, (BlockNumber, ImportedRoot)>,
    /// Messages seen executed on this chain, with the block.
    executions: BTreeMap<MessageId, BlockNumber>,
    /// Index of `headers` by first block (batches hold consecutive blocks).
    batch_by_first_block: BTreeMap<BlockNumber, BatchNumber>,
    /// Index of the `proof` imports in `landed` by message count (looked up per message).
    landed_proof: BTreeMap<u64, BTreeSet<ImportKey>>,
    /// Index of the `proof` imports in `requested` by message count.
    requested_proof: BTreeMap<u64, BTreeSet<ImportKey>>,
    /// Blocks of this chain (as a source) known L2-final.
    certified: BTreeSet<BlockNumber>,
    /// Reverts of this chain's batches seen on the SL ([`Relayer::source_epoch`]).
    reverts: u64,
    /// Certified blocks whose postconfirmation was asked for.
    postconfirm_asked: BTreeSet<BlockNumber>,
    /// The next block expected while `blocks` is empty after a rollback to it (else the block
    /// after the last one held).
    resume_at: Option<BlockNumber>,
    /// Sealed batch headers not accepted yet: their last block is not held yet, or it differs
    /// from the one held (an equivocation or a stale header). Retried after every block.
    pending_headers: BTreeMap<BatchNumber, BatchHeader>,
    /// The backfill under way, if blocks or headers are missing.
    resync: Option<Resync>,
}

/// A chain's backfill under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resync {
    /// The first block wanted (advances as blocks arrive).
    from: BlockNumber,
    /// The highest block known to exist (resynchronised once it is held).
    upto: BlockNumber,
    /// The last request: its `from` and when it was asked (the relayer's clock).
    asked: Option<(BlockNumber, u64)>,
}

impl ChainView {
    /// The number the next block of this chain must have (`None` before the first block).
    fn next_block(&self) -> Option<BlockNumber> {
        match self.blocks.last_key_value() {
            Some((n, _)) => Some(n + 1),
            None => self.resume_at,
        }
    }

    fn batch_of_block(&self, block: BlockNumber) -> Option<&BatchHeader> {
        let (_, batch) = self.batch_by_first_block.range(..=block).next_back()?;
        self.headers
            .get(batch)
            .filter(|h| h.firstBlock <= block && block <= h.lastBlock)
    }

    fn insert_header(&mut self, header: BatchHeader) {
        self.batch_by_first_block
            .insert(header.firstBlock, header.number);
        self.headers.insert(header.number, header);
    }

    fn drop_headers_from(&mut self, from: BatchNumber) {
        for h in self.headers.split_off(&from).values() {
            self.batch_by_first_block.remove(&h.firstBlock);
        }
    }

    fn note_landed(&mut self, key: ImportKey, block: BlockNumber, import: ImportedRoot) {
        if key.kind == ImportKind::Proof {
            self.landed_proof
                .entry(import.messageCount)
                .or_default()
                .insert(key);
        }
        self.landed.insert(key, (block, import));
    }

    fn note_requested(&mut self, key: ImportKey, import: ImportedRoot) {
        if key.kind == ImportKind::Proof {
            self.requested_proof
                .entry(import.messageCount)
                .or_default()
                .insert(key);
        }
        self.requested.insert(key, import);
    }

    fn forget_requested(&mut self, key: &ImportKey) {
        if let Some(i) = self.requested.remove(key) {
            if let Some(keys) = self.requested_proof.get_mut(&i.messageCount) {
                keys.remove(key);
                if keys.is_empty() {
                    self.requested_proof.remove(&i.messageCount);
                }
            }
        }
    }

    /// Rebuilds the `proof` indices after `landed` or `requested` were filtered.
    fn reindex_proofs(&mut self) {
        let index = |m: &mut dyn Iterator<Item = (&ImportKey, &ImportedRoot)>| {
            let mut index: BTreeMap<u64, BTreeSet<ImportKey>> = BTreeMap::new();
            for (k, i) in m.filter(|(k, _)| k.kind == ImportKind::Proof) {
                index.entry(i.messageCount).or_default().insert(*k);
            }
            index
        };
        self.landed_proof = index(&mut self.landed.iter().map(|(k, (_, i))| (k, i)));
        self.requested_proof = index(&mut self.requested.iter());
    }

    /// A `proof` import, landed if possible, else requested, whose message count lies in
    /// `counts` and that passes `covers`.
    fn proof_import(
        &self,
        counts: std::ops::RangeInclusive<u64>,
        covers: impl Fn(&ImportedRoot) -> bool,
    ) -> Option<ImportedRoot> {
        if counts.is_empty() {
            return None;
        }
        let landed = self
            .landed_proof
            .range(counts.clone())
            .flat_map(|(_, keys)| keys)
            .filter_map(|k| self.landed.get(k).map(|(_, i)| i))
            .find(|i| covers(i));
        if let Some(i) = landed {
            return Some(i.clone());
        }
        self.requested_proof
            .range(counts)
            .flat_map(|(_, keys)| keys)
            .filter_map(|k| self.requested.get(k))
            .find(|i| covers(i))
            .cloned()
    }
}

#[derive(Debug, Clone)]
struct Entry {
    record: MessageRecord,
    /// The import the message is executed against, once chosen.
    target: Option<ImportedRoot>,
    /// After a drop: when the next execution is due (it waits in [`Relayer::backoff`]).
    retry_at: Option<u64>,
    /// Why it can never be delivered (reported once, when found).
    undeliverable: Option<Undeliverable>,
}

/// The relayer state machine.
#[derive(Debug, Clone)]
pub struct Relayer {
    config: RelayerConfig,
    chains: BTreeMap<ChainId, ChainView>,
    messages: BTreeMap<MessageId, Entry>,
    /// Messages not executed yet.
    pending: BTreeSet<MessageId>,
    /// The pending messages with no execution in flight: the only ones [`Relayer::progress`]
    /// can move (a submitted one moves when its execution is seen or reported dropped).
    active: BTreeSet<MessageId>,
    global: MessageTree,
    /// `false` once the global mirror diverged or missed a leaf.
    global_ok: bool,
    /// The last SL block whose MessageRoot matched the mirror: (height, root, size).
    sl_block: Option<(u64, B256, u64)>,
    /// Tree checkpoints seen proven ([`Relayer::tree_level_proven`]): the highest level proven
    /// and the snapshot (checkpoint 0: the genesis tree).
    tree: BTreeMap<u64, (u8, Arc<TreeSnapshot>)>,
    /// The last root the settlement layer accepted: (checkpoint, root hash).
    tree_accepted: Option<(u64, B256)>,
    /// The relayer's time when it learned of the accepted root (the SL's time of acceptance is
    /// at most this: the relayer gives up on a checkpoint no earlier than the SL).
    tree_accepted_at_ms: u64,
    /// Shell time of the last [`RelayerInput::Tick`].
    now_ms: u64,
    /// Dropped executions waiting for their retry: (due time, message).
    backoff: BTreeSet<(u64, MessageId)>,
    /// Executed batches whose leaf waits for their batch header (or for an earlier waiting
    /// leaf), by leaf index: (chain, batch, MessageRoot after the leaf). The global mirror
    /// resumes once the headers arrive ([`RelayerAction::Backfill`] asks for them).
    /// The header is the one the shell gave with the event, if any.
    global_waiting: BTreeMap<u64, (ChainId, BatchNumber, B256, Option<BatchHeader>)>,
    /// The SL height after the highest SL block seen by [`Relayer::observe_sl_block`].
    sl_next: Option<u64>,
    /// SL blocks below `sl_next` never seen (their events were lost on the way).
    sl_missing: BTreeSet<u64>,
    /// The last [`RelayerAction::BackfillSl`]: its first height and when it was asked.
    sl_asked: Option<(u64, u64)>,
}

/// Most missing SL blocks tracked (a larger gap is asked for in parts).
const MAX_SL_MISSING: u64 = 4_096;

/// Most sealed batch headers kept pending per chain (the oldest are dropped beyond).
const MAX_PENDING_HEADERS: usize = 64;

fn key_of(root: &ImportedRoot) -> Option<ImportKey> {
    ImportKey::of(root).ok()
}

impl Relayer {
    /// A relayer watching `config.chains`, knowing nothing yet.
    pub fn new(config: RelayerConfig) -> Self {
        let chains = config
            .chains
            .iter()
            .map(|c| (*c, ChainView::default()))
            .collect();
        Self {
            config,
            chains,
            messages: BTreeMap::new(),
            pending: BTreeSet::new(),
            active: BTreeSet::new(),
            global: MessageTree::new(),
            global_ok: true,
            sl_block: None,
            tree: BTreeMap::new(),
            tree_accepted: None,
            tree_accepted_at_ms: 0,
            now_ms: 0,
            backoff: BTreeSet::new(),
            global_waiting: BTreeMap::new(),
            sl_next: None,
            sl_missing: BTreeSet::new(),
            sl_asked: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RelayerConfig {
        &self.config
    }

    /// Handles one input; a rejected input is reported as [`RelayerAction::Error`].
    pub fn handle(&mut self, input: RelayerInput) -> Vec<RelayerAction> {
        match self.try_handle(input) {
            Ok(actions) => actions,
            Err(e) => vec![RelayerAction::Error(e)],
        }
    }

    /// Handles one SL event (those the relayer does not need are ignored).
    pub fn observe_sl(&mut self, ev: &SlEvent) -> Vec<RelayerAction> {
        match SlFact::from_event(ev) {
            Some(fact) => self.handle(RelayerInput::Sl(fact)),
            None => vec![],
        }
    }

    /// Handles the events of one SL block, in order, then moves the pending messages once: what
    /// [`Relayer::observe_sl`] does per event, with one pass over the messages per block.
    ///
    /// The block's height (its `SlBlock` event) is followed: a block seen before is ignored (a
    /// backfill overlapping the feed), and blocks skipped are asked for again
    /// ([`RelayerAction::BackfillSl`]); facts arriving late this way are applied in the order
    /// they arrive (the global mirror orders executed batches by leaf index).
    pub fn observe_sl_block(&mut self, events: &[SlEvent]) -> Vec<RelayerAction> {
        let mut out = vec![];
        let height = events.iter().rev().find_map(|e| match e {
            SlEvent::SlBlock { height, .. } => Some(*height),
            _ => None,
        });
        if let Some(h) = height {
            match self.sl_next {
                Some(n) if h < n && !self.sl_missing.remove(&h) => return out,
                Some(n) if h > n => {
                    let lo = n.max(h.saturating_sub(MAX_SL_MISSING));
                    self.sl_missing.extend(lo..h);
                }
                _ => {}
            }
            self.sl_next = Some(self.sl_next.map_or(h + 1, |n| n.max(h + 1)));
        }
        for ev in events {
            if let Some(fact) = SlFact::from_event(ev) {
                self.sl_fact(fact, &mut out);
            }
        }
        self.progress(&mut out);
        self.ask_sl_backfill(&mut out);
        out
    }

    /// Asks for the SL blocks missing: at once if their first is below the last request's,
    /// else once the last request is [`RelayerConfig::backfill_retry_ms`] old.
    fn ask_sl_backfill(&mut self, out: &mut Vec<RelayerAction>) {
        let (Some(&from), Some(&to)) = (self.sl_missing.first(), self.sl_missing.last()) else {
            self.sl_asked = None;
            return;
        };
        let due = match self.sl_asked {
            None => true,
            Some((f, at)) => {
                from < f || self.now_ms >= at.saturating_add(self.config.backfill_retry_ms)
            }
        };
        if due {
            self.sl_asked = Some((from, self.now_ms));
            out.push(RelayerAction::BackfillSl {
                from_height: from,
                to_height: to,
            });
        }
    }

    /// Handles one input; a rejected input returns its error and changes nothing. Detected
    /// inconsistencies that do not reject the input (e.g. a diverged MessageRoot) are returned
    /// as [`RelayerAction::Error`] among the actions; so are a gap in a chain's blocks and a
    /// block of another branch, which are not accepted but start a resynchronisation (a
    /// [`RelayerAction::Backfill`], and for the latter the deliberate rollback described in
    /// the crate docs).
    pub fn try_handle(&mut self, input: RelayerInput) -> Result<Vec<RelayerAction>, RelayerError> {
        let mut out = vec![];
        match input {
            RelayerInput::SourceBlock { block, receipts } => {
                let chain = block.header.chainId;
                if self.source_block(block, &receipts, &mut out)? {
                    self.after_block(chain, &mut out);
                }
            }
            RelayerInput::BatchSealed { header } => {
                let chain = header.chainId;
                self.batch_sealed(header, &mut out)?;
                self.after_block(chain, &mut out);
            }
            RelayerInput::Sl(fact) => self.sl_fact(fact, &mut out),
            RelayerInput::ExecuteDropped { id } => self.execute_dropped(id, false),
            RelayerInput::ExecuteUndone { id } => self.execute_dropped(id, true),
            RelayerInput::Tick { now_ms } => {
                self.now_ms = self.now_ms.max(now_ms);
                let resyncing: Vec<ChainId> = self
                    .chains
                    .iter()
                    .filter(|(_, c)| c.resync.is_some())
                    .map(|(id, _)| *id)
                    .collect();
                for chain in resyncing {
                    self.ask_backfill(chain, &mut out);
                }
                self.ask_sl_backfill(&mut out);
                while let Some(&(at, id)) = self.backoff.first() {
                    if at > self.now_ms {
                        break;
                    }
                    self.backoff.pop_first();
                    let Some(e) = self.messages.get_mut(&id) else {
                        continue;
                    };
                    if e.retry_at != Some(at) {
                        continue; // stale: retried, executed or re-sent since
                    }
                    e.retry_at = None;
                    if e.record.status == MessageStatus::Submitted {
                        // an execution undone by a revert of its destination, not seen again
                        self.execute_dropped(id, false);
                    } else {
                        self.active.insert(id);
                    }
                }
            }
            RelayerInput::Certified {
                chain,
                height,
                block_hash,
            } => {
                let c = self
                    .chains
                    .get_mut(&chain)
                    .ok_or(RelayerError::UnknownChain(chain))?;
                if c.blocks.get(&height).is_some_and(|b| b.hash == block_hash) {
                    c.certified.insert(height);
                }
            }
            RelayerInput::TreeLevelProven {
                checkpoint,
                level,
                snapshot,
            } => self.tree_level_proven(checkpoint, level, snapshot),
            RelayerInput::ImportDropped { dest, root } => {
                // asked again on the next input (not now: the refusal may be immediate again)
                if let (Some(c), Some(k)) = (self.chains.get_mut(&dest), key_of(&root)) {
                    c.forget_requested(&k);
                }
                return Ok(out);
            }
        }
        self.progress(&mut out);
        Ok(out)
    }

    /// Mirrors a block. `Ok(true)`: accepted, or a copy of a block held (ignored); `Ok(false)`:
    /// not accepted but acted on — a gap (a backfill is asked) or a block that does not extend
    /// the one held before it (the mirror is rolled back to the block before that one, and a
    /// backfill asked); `Err`: rejected, nothing changed.
    fn source_block(
        &mut self,
        block: Block,
        receipts: &[TxReceipt],
        out: &mut Vec<RelayerAction>,
    ) -> Result<bool, RelayerError> {
        let h = &block.header;
        let chain_id = h.chainId;
        let chain = self
            .chains
            .get_mut(&chain_id)
            .ok_or(RelayerError::UnknownChain(chain_id))?;
        if let Some(next) = chain.next_block() {
            if h.number < next {
                if chain
                    .blocks
                    .get(&h.number)
                    .is_some_and(|b| b.hash == h.hash())
                {
                    // a copy (a backfill overlapping the feed): nothing to do
                    if let Some(r) = chain.resync.as_mut() {
                        r.from = r.from.max(h.number + 1);
                    }
                    return Ok(true);
                }
                // another block at a height held: stale (a void branch in flight) or the first
                // sign of a fork, which the next block of the fork reveals (parent mismatch)
                return Err(RelayerError::BlockOutOfOrder {
                    chain: chain_id,
                    expected: next,
                    got: h.number,
                });
            }
            if h.number > next {
                out.push(RelayerAction::Error(RelayerError::BlockOutOfOrder {
                    chain: chain_id,
                    expected: next,
                    got: h.number,
                }));
                self.want_backfill(chain_id, next, h.number, out);
                return Ok(false);
            }
            let parent = h
                .number
                .checked_sub(1)
                .and_then(|p| chain.blocks.get(&p))
                .map(|b| b.hash);
            if parent.is_some_and(|p| p != h.parentHash) {
                // the chain is not the one mirrored from the parent's height on (an equivocation
                // or a re-sequenced chain this relayer missed): forget the block held there and
                // ask for the canonical blocks from that height
                out.push(RelayerAction::Error(RelayerError::ParentMismatch {
                    chain: chain_id,
                    block: h.number,
                }));
                let fork = h.number - 1;
                self.rollback(chain_id, fork);
                self.want_backfill(chain_id, fork, h.number, out);
                return Ok(false);
            }
        }
        // decode the block's messages
        let bad = |reason: String| RelayerError::BadMessageLog {
            chain: chain_id,
            block: h.number,
            reason,
        };
        let mut sent = vec![];
        for r in receipts {
            for log in r.logs.iter().filter(|l| l.address == MESSENGER_ADDRESS) {
                let Ok(ev) = IMessenger::MessageSent::decode_log_data(&log.data) else {
                    continue;
                };
                let message = Message {
                    sourceChain: chain_id,
                    nonce: ev.nonce,
                    sender: r.from,
                    destChain: ev.destChain,
                    recipient: ev.recipient,
                    value: ev.value,
                    mode: ev.mode,
                    payload: ev.payload.clone(),
                };
                let expected = chain.tree.len() + sent.len() as u64;
                if ev.nonce != expected {
                    return Err(bad(format!("nonce {} where {expected} is next", ev.nonce)));
                }
                if message.leaf_hash() != ev.leaf {
                    return Err(bad(format!("leaf of message {} does not match", ev.nonce)));
                }
                let mode = ImportKind::try_from(ev.mode).map_err(|e| bad(e.to_string()))?;
                sent.push((message, mode));
            }
        }
        // mirror, check, and undo on mismatch
        let before = chain.tree.len();
        let mut appended = Ok(());
        for (m, _) in &sent {
            if let Err(e) = chain.tree.append(m.leaf_hash()) {
                appended = Err(e);
                break;
            }
        }
        let mirrored = chain.tree.root();
        let mirrored_count = chain.tree.len();
        if appended.is_err() || mirrored != h.localRoot || mirrored_count != h.messageCount {
            chain.tree.truncate(before)?;
            appended?;
            return Err(RelayerError::LocalRootMismatch {
                chain: chain_id,
                block: h.number,
                claimed: h.localRoot,
                claimed_count: h.messageCount,
                mirrored,
                mirrored_count,
            });
        }
        // accepted: record the block as source and as destination
        let checkpoint_block = self.config.aggregation.as_ref().is_some_and(|a| {
            a.position(chain_id).is_some() && h.number.is_multiple_of(a.checkpoint_blocks.max(1))
        });
        chain.blocks.insert(
            h.number,
            BlockInfo {
                hash: h.hash(),
                local_root: h.localRoot,
                message_count: h.messageCount,
                header: checkpoint_block.then(|| h.clone()),
            },
        );
        for import in &block.imports {
            if let Some(k) = key_of(import) {
                chain.note_landed(k, h.number, import.clone());
            }
        }
        let mut executed = vec![];
        for r in receipts {
            if let Some(id) = r.message_executed {
                chain.executions.insert(id, h.number);
                executed.push(id);
            }
        }
        for id in executed {
            if let Some(e) = self.messages.get_mut(&id) {
                if e.record.message.destChain == chain_id {
                    e.record.status = MessageStatus::Executed {
                        dest_block: h.number,
                    };
                    e.retry_at = None;
                    self.pending.remove(&id);
                    self.active.remove(&id);
                }
            }
        }
        if let Some(r) = chain.resync.as_mut() {
            r.from = r.from.max(h.number + 1);
        }
        for (message, mode) in sent {
            let id = message.id();
            // re-learned after a rollback: its execution may have been seen already
            let done = self
                .chains
                .get(&message.destChain)
                .and_then(|d| d.executions.get(&id).copied());
            let status = match done {
                Some(dest_block) => MessageStatus::Executed { dest_block },
                None => {
                    self.pending.insert(id);
                    self.active.insert(id);
                    MessageStatus::Sent { at_block: h.number }
                }
            };
            self.messages.insert(
                id,
                Entry {
                    record: MessageRecord {
                        message,
                        mode,
                        source_block: h.number,
                        status,
                        attempts: 0,
                    },
                    target: None,
                    retry_at: None,
                    undeliverable: None,
                },
            );
        }
        Ok(true)
    }

    /// Notes that `chain` misses blocks `from..=upto` (or lower ones, after a rollback) and asks
    /// for them unless a request for them is recent.
    fn want_backfill(
        &mut self,
        chain_id: ChainId,
        from: BlockNumber,
        upto: BlockNumber,
        out: &mut Vec<RelayerAction>,
    ) {
        let Some(chain) = self.chains.get_mut(&chain_id) else {
            return;
        };
        let r = chain.resync.get_or_insert(Resync {
            from,
            upto,
            asked: None,
        });
        r.from = r.from.min(from);
        r.upto = r.upto.max(upto);
        self.ask_backfill(chain_id, out);
    }

    /// Asks for the blocks `chain` misses: at once if never asked or if the mirror now wants
    /// blocks below the last request (a rollback), else once the last request is
    /// [`RelayerConfig::backfill_retry_ms`] old.
    fn ask_backfill(&mut self, chain_id: ChainId, out: &mut Vec<RelayerAction>) {
        let (now, retry) = (self.now_ms, self.config.backfill_retry_ms);
        let Some(r) = self
            .chains
            .get_mut(&chain_id)
            .and_then(|c| c.resync.as_mut())
        else {
            return;
        };
        let due = match r.asked {
            None => true,
            Some((from, at)) => r.from < from || now >= at.saturating_add(retry),
        };
        if due {
            r.asked = Some((r.from, now));
            out.push(RelayerAction::Backfill {
                chain: chain_id,
                from: r.from,
            });
        }
    }

    /// After a block or header of `chain` was handled: retries its pending headers, resumes the
    /// global mirror, and ends the chain's backfill once it holds every block and header it
    /// was missing.
    fn after_block(&mut self, chain_id: ChainId, out: &mut Vec<RelayerAction>) {
        let Some(chain) = self.chains.get_mut(&chain_id) else {
            return;
        };
        let next = chain.next_block().unwrap_or(0);
        let ready: Vec<BatchHeader> = chain
            .pending_headers
            .values()
            .filter(|h| h.lastBlock < next)
            .cloned()
            .collect();
        for header in ready {
            let number = header.number;
            match Self::check_header(chain, &header) {
                Ok(true) => {
                    chain.pending_headers.remove(&number);
                    chain.insert_header(header);
                }
                // held block differs: stale, or a fork the next block reveals
                Ok(false) => {}
                Err(_) => {
                    chain.pending_headers.remove(&number);
                }
            }
        }
        if let Some(top) = chain.headers.last_key_value().map(|(n, _)| *n) {
            chain.pending_headers.retain(|n, _| *n > top);
        }
        self.drain_global(out);
        let missing_header = self
            .global_waiting
            .values()
            .any(|(c, b, _, h)| *c == chain_id && h.is_none() && !self.has_header(*c, *b));
        let Some(chain) = self.chains.get_mut(&chain_id) else {
            return;
        };
        let pending_upto = chain.pending_headers.values().map(|h| h.lastBlock).max();
        if let Some(r) = chain.resync.as_mut() {
            if let Some(u) = pending_upto {
                r.upto = r.upto.max(u);
            }
            if r.from > r.upto && next > r.upto && !missing_header {
                chain.resync = None;
            }
        }
    }

    fn has_header(&self, chain: ChainId, batch: BatchNumber) -> bool {
        self.chains
            .get(&chain)
            .is_some_and(|c| c.headers.contains_key(&batch))
    }

    /// Forgets `chain`'s blocks from `first_block` on, as a revert does (messages sent in them
    /// are forgotten and re-learned from the blocks that replace them; imports and executions
    /// seen in them likewise), but keeps the settlement layer's facts about its batches. Headers
    /// of batches over the forgotten blocks wait again for their blocks.
    fn rollback(&mut self, chain_id: ChainId, first_block: BlockNumber) {
        let undone: Vec<MessageId> = self
            .chains
            .get(&chain_id)
            .map(|c| {
                c.executions
                    .iter()
                    .filter(|(_, b)| **b >= first_block)
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default();
        self.reverted(chain_id, BatchNumber::MAX, first_block);
        // an execution seen only in a forgotten block may be gone: let the message move again
        // (a copy of a canonical execution is refused by the destination; the re-learned block
        // shows it executed)
        for id in undone {
            if let Some(e) = self.messages.get_mut(&id) {
                if e.record.status == MessageStatus::Submitted {
                    e.record.status = MessageStatus::Imported;
                    self.active.insert(id);
                }
            }
        }
        let Some(chain) = self.chains.get_mut(&chain_id) else {
            return;
        };
        let over: Vec<BatchNumber> = chain
            .headers
            .values()
            .filter(|h| h.lastBlock >= first_block)
            .map(|h| h.number)
            .collect();
        if let Some(from) = over.first() {
            let moved = chain.headers.split_off(from);
            for h in moved.into_values() {
                chain.batch_by_first_block.remove(&h.firstBlock);
                chain.pending_headers.insert(h.number, h);
            }
        }
        if chain.blocks.is_empty() {
            chain.resume_at = Some(first_block);
        }
        if let Some(r) = chain.resync.as_mut() {
            r.from = r.from.min(first_block);
        }
    }

    /// Keeps a proven tree level. Only a snapshot whose node hashes follow from its block hashes
    /// and previous hashes is kept (the latest per checkpoint); whether a node in it may be
    /// imported is decided per node when a message needs it ([`Relayer::tree_node_settleable`]).
    fn tree_level_proven(&mut self, checkpoint: u64, level: u8, snapshot: Arc<TreeSnapshot>) {
        let Some(agg) = self.config.aggregation.as_ref() else {
            return;
        };
        if snapshot.checkpoint != checkpoint
            || checkpoint == 0
            || !snapshot_consistent(agg, &snapshot)
        {
            return;
        }
        if self.tree_accepted.is_none() {
            // the genesis tree, from the chains' genesis blocks as mirrored
            let genesis: Option<Vec<B256>> = agg
                .chains
                .iter()
                .map(|c| self.chains.get(c)?.blocks.get(&0).map(|b| b.hash))
                .collect();
            let state = genesis.and_then(|g| {
                let shape = TreeShape::new(u32::try_from(g.len()).ok()?).ok()?;
                AggregatorState::genesis(&KeccakHasher, shape, &g).ok()
            });
            if let Some(state) = state {
                let g = state.snapshot().clone();
                let root = g.nodes.last().and_then(|r| r.first()).map(|n| n.hash);
                self.tree_accepted = root.map(|r| (0, r));
                self.tree_accepted_at_ms = self.now_ms;
                self.tree.insert(0, (tree_depth_of(agg), Arc::new(g)));
            }
        }
        match self.tree.get_mut(&checkpoint) {
            Some(entry) if entry.1 == snapshot => entry.0 = entry.0.max(level),
            // a different tree at this checkpoint (a successor's) replaces the one seen
            Some(entry) => *entry = (level, snapshot),
            None => {
                self.tree.insert(checkpoint, (level, snapshot));
            }
        }
        self.prune_tree();
    }

    /// Drops snapshots far below the last accepted root, and the oldest beyond the bound.
    fn prune_tree(&mut self) {
        let accepted = self.tree_accepted.map_or(0, |(c, _)| c);
        let keep_from = accepted.saturating_sub(KEPT_BELOW_ACCEPTED);
        self.tree = self.tree.split_off(&keep_from);
        while self.tree.len() > KEPT_TREE_CHECKPOINTS {
            self.tree.pop_first();
        }
    }

    /// Whether node `(level, index)` of the kept snapshot at `checkpoint` is a hash the tree
    /// will settle: the snapshots from the last accepted root to `checkpoint` link (each of the
    /// subtree's nodes' previous hash is its hash one checkpoint before), the accepted one has
    /// the accepted root hash, and above the accepted root every block under the node is the
    /// block this relayer mirrors (not one a revert voided, not a stale one an aggregator kept
    /// for a withheld chain).
    fn tree_node_settleable(&self, level: u8, index: u32, checkpoint: u64) -> bool {
        let (Some(agg), Some((accepted, accepted_root))) =
            (self.config.aggregation.as_ref(), self.tree_accepted)
        else {
            return false;
        };
        let snap = |k: u64| self.tree.get(&k).map(|(_, s)| s.as_ref());
        let root_ok = snap(accepted)
            .and_then(|s| s.nodes.last()?.first())
            .is_some_and(|n| n.hash == accepted_root);
        if !root_ok {
            return false;
        }
        // past the accepted root, only while the aggregator has not timed out on the SL
        if checkpoint > accepted
            && agg
                .aggregator_timeout_ms
                .is_some_and(|t| self.now_ms >= self.tree_accepted_at_ms.saturating_add(t))
        {
            return false;
        }
        let chains = agg.chains.len() as u32;
        let (lo, hi) = (checkpoint.min(accepted), checkpoint.max(accepted));
        for k in lo + 1..=hi {
            let (Some(before), Some(at)) = (snap(k - 1), snap(k)) else {
                return false;
            };
            // every node of the subtree links to its previous hash
            for l in 1..=level {
                let shift = level - l;
                let first = index << shift;
                let last = ((index + 1) << shift).min(tree_nodes_at(chains, l));
                for i in first..last {
                    let prev = at
                        .nodes
                        .get(usize::from(l) - 1)
                        .and_then(|r| r.get(i as usize));
                    let hash = before
                        .nodes
                        .get(usize::from(l) - 1)
                        .and_then(|r| r.get(i as usize));
                    match (prev, hash) {
                        (Some(p), Some(h)) if p.prev == h.hash => {}
                        _ => return false,
                    }
                }
            }
            if k <= accepted {
                continue; // settled by the accepted root
            }
            let Some(height) = k.checked_mul(agg.checkpoint_blocks) else {
                return false;
            };
            let first = index << level;
            let last = ((index + 1) << level).min(chains);
            for p in first..last {
                let mirrored = agg
                    .chains
                    .get(p as usize)
                    .and_then(|c| self.chains.get(c)?.blocks.get(&height))
                    .map(|b| b.hash);
                if mirrored.is_none() || at.block_hashes.get(p as usize).copied() != mirrored {
                    return false;
                }
            }
        }
        true
    }

    /// Checks a sealed header against the mirror: `Ok(true)` consistent, `Ok(false)` its last
    /// block is held with another hash (a fork, or a stale header), `Err` inconsistent or its
    /// last block was never seen.
    fn check_header(chain: &ChainView, header: &BatchHeader) -> Result<bool, RelayerError> {
        let bad = |reason: String| RelayerError::BadBatchHeader {
            chain: header.chainId,
            batch: header.number,
            reason,
        };
        if header.firstBlock > header.lastBlock {
            return Err(bad("first block after last block".into()));
        }
        let last = chain
            .blocks
            .get(&header.lastBlock)
            .ok_or_else(|| bad(format!("last block {} not seen", header.lastBlock)))?;
        if last.hash != header.lastBlockHash {
            return Ok(false);
        }
        if last.local_root != header.chainBatchRoot || last.message_count != header.messageCount {
            return Err(bad(
                "chainBatchRoot/messageCount differ from the last block's LocalRoot".into(),
            ));
        }
        if chain.tree.root_at(header.messageCount)? != header.chainBatchRoot {
            return Err(bad("chainBatchRoot is not the mirrored root".into()));
        }
        Ok(true)
    }

    /// A sealed header: accepted if it matches the mirror; kept pending (and its blocks asked
    /// for) if its last block is not held yet; kept pending and reported if its last block is
    /// held with another hash (the next block of a fork rolls the mirror back).
    fn batch_sealed(
        &mut self,
        header: BatchHeader,
        out: &mut Vec<RelayerAction>,
    ) -> Result<(), RelayerError> {
        let chain_id = header.chainId;
        let chain = self
            .chains
            .get_mut(&chain_id)
            .ok_or(RelayerError::UnknownChain(chain_id))?;
        let bad = |reason: String| RelayerError::BadBatchHeader {
            chain: chain_id,
            batch: header.number,
            reason,
        };
        if header.firstBlock > header.lastBlock {
            return Err(bad("first block after last block".into()));
        }
        let next = chain.next_block().unwrap_or(0);
        let ahead = header.lastBlock >= next;
        if !ahead && !Self::check_header(chain, &header)? {
            out.push(RelayerAction::Error(bad(
                "last block hash differs from the block seen".into(),
            )));
        } else if !ahead {
            chain.pending_headers.remove(&header.number);
            chain.insert_header(header);
            return Ok(());
        }
        let last_block = header.lastBlock;
        chain.pending_headers.insert(header.number, header);
        while chain.pending_headers.len() > MAX_PENDING_HEADERS {
            chain.pending_headers.pop_first();
        }
        if ahead {
            self.want_backfill(chain_id, next, last_block, out);
        }
        Ok(())
    }

    fn sl_fact(&mut self, fact: SlFact, out: &mut Vec<RelayerAction>) {
        match fact {
            SlFact::BatchCommitted { chain, batch } => {
                if let Some(c) = self.chains.get_mut(&chain) {
                    c.committed.insert(batch);
                }
            }
            SlFact::BatchProven { chain, batch } => {
                if let Some(c) = self.chains.get_mut(&chain) {
                    c.proven.insert(batch);
                }
            }
            SlFact::BatchExecuted {
                chain,
                batch,
                leaf_index,
                message_root,
                header,
            } => {
                if let Some(c) = self.chains.get_mut(&chain) {
                    c.executed.insert(batch, leaf_index);
                }
                if !self.global_ok {
                    return;
                }
                let given = header.is_some();
                self.global_waiting
                    .insert(leaf_index, (chain, batch, message_root, header));
                if !given && !self.has_header(chain, batch) {
                    // the mirror waits for the header: ask for it again, from the block after
                    // the last header held before it
                    out.push(RelayerAction::Error(RelayerError::MissingBatchHeader {
                        chain,
                        batch,
                    }));
                    let from = self
                        .chains
                        .get(&chain)
                        .and_then(|c| c.headers.range(..batch).next_back())
                        .map_or(0, |(_, h)| h.lastBlock + 1);
                    let upto = self
                        .chains
                        .get(&chain)
                        .and_then(|c| c.next_block())
                        .map_or(0, |n| n.saturating_sub(1));
                    self.want_backfill(chain, from, upto, out);
                }
                self.drain_global(out);
            }
            SlFact::BatchesReverted {
                chain,
                from,
                first_block,
            } => {
                // the source epoch counts the SL's reverts only (as every chain node does),
                // not this mirror's own fork roll-backs
                if let Some(view) = self.chains.get_mut(&chain) {
                    view.reverts += 1;
                }
                self.reverted(chain, from, first_block)
            }
            SlFact::RootAccepted { checkpoint, root } => {
                if self.tree_accepted.is_none_or(|(c, _)| checkpoint > c) {
                    self.tree_accepted = Some((checkpoint, root));
                    self.tree_accepted_at_ms = self.now_ms;
                    self.prune_tree();
                }
            }
            SlFact::SlBlock {
                height,
                message_root,
                message_root_size,
            } => {
                if !self.global_ok || !self.global_waiting.is_empty() {
                    return; // stopped, or behind until the headers it waits for arrive
                }
                if self.global.len() < message_root_size {
                    return; // behind: an executed batch's event was lost (asked for again)
                }
                if self.sl_block.is_some_and(|(h, _, _)| height <= h) {
                    return; // an older block again (an SL backfill overlapping the feed)
                }
                // the mirror may already hold leaves of later blocks (their events came first,
                // e.g. through a backfill): compare at this block's size
                let mirrored = match self.global.root_at(message_root_size) {
                    Ok(root) => root,
                    Err(_) => self.global.root(),
                };
                if mirrored != message_root {
                    self.global_ok = false;
                    out.push(RelayerAction::Error(RelayerError::MessageRootMismatch {
                        size: message_root_size,
                        sl_root: message_root,
                        mirrored,
                    }));
                    return;
                }
                self.sl_block = Some((height, message_root, message_root_size));
            }
        }
    }

    /// Appends the waiting executed batches' leaves to the global mirror, in leaf order, as far
    /// as their headers are held; a leaf that does not fit stops the mirror.
    fn drain_global(&mut self, out: &mut Vec<RelayerAction>) {
        while self.global_ok {
            let Some((&leaf_index, (chain, batch, message_root, given))) =
                self.global_waiting.first_key_value()
            else {
                return;
            };
            let (chain, batch, message_root) = (*chain, *batch, *message_root);
            let Some(header) = given.clone().or_else(|| {
                self.chains
                    .get(&chain)
                    .and_then(|c| c.headers.get(&batch).cloned())
            }) else {
                return;
            };
            let size = self.global.len();
            if leaf_index > size {
                return; // an earlier BatchExecuted was lost: wait for it (BackfillSl)
            }
            self.global_waiting.pop_first();
            if leaf_index < size {
                // seen before (an SL backfill overlapping the feed): it must agree
                if self.global.root_at(leaf_index + 1).ok() == Some(message_root) {
                    continue;
                }
            }
            let leaf = message_root_leaf(chain, batch, header.chainBatchRoot, header.messageCount);
            let appended = leaf_index == size && self.global.append(leaf).is_ok();
            let mirrored = self.global.root();
            if !appended || mirrored != message_root {
                let _ = self.global.truncate(size);
                self.global_ok = false;
                self.global_waiting.clear();
                out.push(RelayerAction::Error(RelayerError::MessageRootMismatch {
                    size: leaf_index + 1,
                    sl_root: message_root,
                    mirrored,
                }));
            }
        }
    }

    fn reverted(&mut self, chain_id: ChainId, from: BatchNumber, first_block: BlockNumber) {
        // imports of void roots of this source are no longer wanted anywhere (tree node hashes
        // over the source's void blocks included)
        let agg = self.config.aggregation.as_ref();
        let void = |importer: ChainId, i: &ImportedRoot| {
            i.voided_by(chain_id, from, first_block)
                || agg.is_some_and(|a| a.import_voided_by(importer, i, chain_id, first_block))
        };
        for (id, c) in self.chains.iter_mut() {
            c.requested.retain(|_, i| !void(*id, i));
            c.reindex_proofs();
        }
        for e in self.messages.values_mut() {
            let dest = e.record.message.destChain;
            if e.target.as_ref().is_some_and(|t| void(dest, t)) {
                e.target = None;
            }
        }
        let Some(chain) = self.chains.get_mut(&chain_id) else {
            return;
        };
        // as a source
        let count = chain
            .blocks
            .range(..first_block)
            .next_back()
            .map_or(0, |(_, b)| b.message_count);
        let count = count.min(chain.tree.len());
        let _ = chain.tree.truncate(count);
        chain.blocks.split_off(&first_block);
        chain.certified.split_off(&first_block);
        chain.postconfirm_asked.split_off(&first_block);
        chain.drop_headers_from(from);
        chain.pending_headers.split_off(&from);
        chain.committed.split_off(&from);
        chain.proven.split_off(&from);
        let gone: Vec<MessageId> = self
            .messages
            .range(
                MessageId {
                    source_chain: chain_id,
                    nonce: count,
                }..=MessageId {
                    source_chain: chain_id,
                    nonce: u64::MAX,
                },
            )
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.messages.remove(&id);
            self.pending.remove(&id);
            self.active.remove(&id);
        }
        // as a destination: imports in the discarded blocks are no longer there, and no
        // longer asked for either (the request was answered by a block that is gone): they are
        // asked for again unless the re-sequenced chain includes them itself. An `aggregated`
        // one that is neither landed nor asked for is replaced by a newer checkpoint's, or by a
        // stronger root once no checkpoint can settle (`progress`, `tree_node_settleable`); a
        // roll-back drops those whose checkpoint no root settled in time, and a chain node
        // refuses them, so none is asked for again
        let unlanded: Vec<ImportKey> = chain
            .landed
            .iter()
            .filter(|(_, (b, _))| *b >= first_block)
            .map(|(k, _)| *k)
            .collect();
        chain.landed.retain(|_, (b, _)| *b < first_block);
        for k in &unlanded {
            chain.requested.remove(k);
        }
        chain.reindex_proofs();
        let undone: Vec<MessageId> = chain
            .executions
            .iter()
            .filter(|(_, b)| **b >= first_block)
            .map(|(id, _)| *id)
            .collect();
        chain.executions.retain(|_, b| *b < first_block);
        // the re-sequenced chain may re-include the transaction (its node re-pools it), or not
        // (the pool refused it, or it fails against a void import): if it is not seen again
        // within the longest backoff it counts as dropped
        let timeout = self.now_ms.saturating_add(self.config.retry_max_ms);
        for id in undone {
            if let Some(e) = self.messages.get_mut(&id) {
                if e.record.message.destChain == chain_id {
                    e.record.status = MessageStatus::Submitted;
                    e.retry_at = Some(timeout);
                    self.backoff.insert((timeout, id));
                    self.pending.insert(id);
                }
            }
        }
    }

    /// The import `id` should be executed against, if it can be chosen now.
    fn choose_target(&self, id: &MessageId) -> Option<ImportedRoot> {
        let e = self.messages.get(id)?;
        let m = &e.record.message;
        let src = self.chains.get(&m.sourceChain)?;
        let dest = self.chains.get(&m.destChain)?;
        match e.record.mode {
            ImportKind::Precommit => {
                let b = src.blocks.get(&e.record.source_block)?;
                Some(ImportedRoot {
                    kind: ImportKind::Precommit as u8,
                    sourceChain: m.sourceChain,
                    sourceHeight: e.record.source_block,
                    root: b.local_root,
                    messageCount: b.message_count,
                })
            }
            ImportKind::Qc => {
                let height = *src.certified.range(e.record.source_block..).next()?;
                let b = src.blocks.get(&height)?;
                Some(ImportedRoot {
                    kind: ImportKind::Qc as u8,
                    sourceChain: m.sourceChain,
                    sourceHeight: height,
                    root: b.local_root,
                    messageCount: b.message_count,
                })
            }
            kind @ (ImportKind::Commit | ImportKind::Optimistic) => {
                let h = src.batch_of_block(e.record.source_block)?;
                let ready = if kind == ImportKind::Commit {
                    &src.committed
                } else {
                    &src.proven
                };
                if !ready.contains(&h.number) {
                    return None;
                }
                Some(ImportedRoot {
                    kind: kind as u8,
                    sourceChain: m.sourceChain,
                    sourceHeight: h.number,
                    root: h.chainBatchRoot,
                    messageCount: h.messageCount,
                })
            }
            ImportKind::Proof => self.sl_root_target(id),
            ImportKind::Aggregated => {
                let agg = self.config.aggregation.as_ref()?;
                let (ps, pd) = (agg.position(m.sourceChain)?, agg.position(m.destChain)?);
                let level = common_ancestor_level(ps, pd);
                // the newest proven checkpoint that covers the message and that the tree can
                // still settle in the destination's next blocks: an import of checkpoint `c` is
                // settled by the tree at `c + 1` or `c + 2`, so a destination refuses it in
                // blocks of later checkpoints
                let first = agg
                    .checkpoint_of(e.record.source_block)
                    .max(agg.dest_checkpoint(dest).saturating_sub(2));
                self.tree
                    .range(first..)
                    .rev()
                    .filter(|(_, (proven, _))| *proven >= level)
                    .find_map(|(c, (_, snapshot))| {
                        let block = src.blocks.get(&c.checked_mul(agg.checkpoint_blocks)?)?;
                        if snapshot.block_hashes.get(ps as usize) != Some(&block.hash) {
                            return None;
                        }
                        let node = snapshot
                            .nodes
                            .get(usize::from(level) - 1)?
                            .get((pd >> level) as usize)?;
                        if !self.tree_node_settleable(level, pd >> level, *c) {
                            return None;
                        }
                        Some(ImportedRoot {
                            kind: ImportKind::Aggregated as u8,
                            sourceChain: SETTLEMENT_LAYER_CHAIN_ID,
                            sourceHeight: *c,
                            root: node.hash,
                            messageCount: u64::from(level),
                        })
                    })
            }
        }
    }

    /// Whether `dest` applies `import` in its next block (it holds an `aggregated` import of
    /// checkpoint `c` until its blocks are past checkpoint `c`): only then may an execution
    /// ride in the same block.
    fn import_applies_at_once(&self, dest: &ChainView, import: &ImportedRoot) -> bool {
        import.kind != ImportKind::Aggregated as u8
            || self
                .config
                .aggregation
                .as_ref()
                .is_some_and(|a| a.dest_checkpoint(dest) > import.sourceHeight)
    }

    /// Whether the relayer can still build the path of `message` to the node `target` imports.
    fn aggregated_target_provable(&self, message: &Message, target: &ImportedRoot) -> bool {
        u8::try_from(target.messageCount)
            .ok()
            .and_then(|level| self.aggregated_path(message.sourceChain, target.sourceHeight, level))
            .and_then(|p| p.node_hash().ok())
            == Some(target.root)
    }

    /// The path from `chain`'s leaf at `checkpoint` to its ancestor at `level`.
    fn aggregated_path(
        &self,
        chain: ChainId,
        checkpoint: u64,
        level: u8,
    ) -> Option<AggregatedPath> {
        let agg = self.config.aggregation.as_ref()?;
        let pos = agg.position(chain)?;
        let chains = u32::try_from(agg.chains.len()).ok()?;
        let (_, snapshot) = self.tree.get(&checkpoint)?;
        let header = self
            .chains
            .get(&chain)?
            .blocks
            .get(&checkpoint.checked_mul(agg.checkpoint_blocks)?)?
            .header
            .clone()?;
        let mut steps = Vec::with_capacity(usize::from(level));
        for l in 1..=level {
            let sibling = if l == 1 {
                snapshot.block_hashes.get((pos ^ 1) as usize).copied()
            } else {
                snapshot
                    .nodes
                    .get(usize::from(l) - 2)?
                    .get(((pos >> (l - 1)) ^ 1) as usize)
                    .map(|n| n.hash)
            };
            let prev = snapshot
                .nodes
                .get(usize::from(l) - 1)?
                .get((pos >> l) as usize)?
                .prev;
            steps.push(PathStep { sibling, prev });
        }
        Some(AggregatedPath {
            chain: pos,
            chains,
            header,
            steps,
        })
    }

    fn build_proof(&self, id: &MessageId, target: &ImportedRoot) -> Option<MessageProof> {
        let e = self.messages.get(id)?;
        let m = &e.record.message;
        let src = self.chains.get(&m.sourceChain)?;
        // the proof follows the root it is checked against, which may be stronger than the mode
        let kind = ImportKind::try_from(target.kind).ok()?;
        if !kind.satisfies(e.record.mode) {
            return None;
        }
        match kind {
            ImportKind::Precommit
            | ImportKind::Qc
            | ImportKind::Commit
            | ImportKind::Optimistic => {
                if src.tree.root_at(target.messageCount).ok()? != target.root {
                    return None;
                }
                let p = src
                    .tree
                    .inclusion_proof(m.nonce, target.messageCount)
                    .ok()?;
                Some(single_level_proof(kind, target.root, p))
            }
            ImportKind::Proof => {
                let h = src.batch_of_block(e.record.source_block)?;
                let leaf = *src.executed.get(&h.number)?;
                let inner = src.tree.inclusion_proof(m.nonce, h.messageCount).ok()?;
                let outer = self
                    .global
                    .inclusion_proof(leaf, target.messageCount)
                    .ok()?;
                Some(two_level_proof(
                    target.root,
                    h.number,
                    h.chainBatchRoot,
                    inner,
                    outer,
                ))
            }
            ImportKind::Aggregated => {
                let level = u8::try_from(target.messageCount).ok()?;
                let path = self.aggregated_path(m.sourceChain, target.sourceHeight, level)?;
                if path.node_hash().ok()? != target.root {
                    return None;
                }
                let inner = src
                    .tree
                    .inclusion_proof(m.nonce, path.header.messageCount)
                    .ok()?;
                Some(aggregated_proof(
                    target.root,
                    target.sourceHeight,
                    inner,
                    &path,
                ))
            }
        }
    }

    /// The shell reports `id`'s execution dropped: retried at once after the first drop, after
    /// a backoff after later ones.
    fn execute_dropped(&mut self, id: MessageId, undone: bool) {
        let Some(e) = self.messages.get_mut(&id) else {
            return;
        };
        if e.record.status != MessageStatus::Submitted {
            return;
        }
        e.retry_at = None;
        let landed = e
            .target
            .as_ref()
            .and_then(key_of)
            .zip(self.chains.get(&e.record.message.destChain))
            .is_some_and(|(k, d)| d.landed.contains_key(&k));
        e.record.status = if landed {
            MessageStatus::Imported
        } else {
            MessageStatus::Sent {
                at_block: e.record.source_block,
            }
        };
        let delay = if undone {
            0
        } else {
            self.config.retry_delay_ms(e.record.attempts)
        };
        if delay == 0 {
            self.active.insert(id);
        } else {
            let at = self.now_ms.saturating_add(delay);
            e.retry_at = Some(at);
            self.backoff.insert((at, id));
        }
    }

    /// The SL MessageRoot import that proves message `id` once its source batch executed on the
    /// SL: one the destination already imported (or was asked to) holding the batch's leaf, else
    /// the root of the last SL block seen. A `proof` root satisfies every mode.
    fn sl_root_target(&self, id: &MessageId) -> Option<ImportedRoot> {
        if !self.global_ok {
            return None;
        }
        let e = self.messages.get(id)?;
        let src = self.chains.get(&e.record.message.sourceChain)?;
        let dest = self.chains.get(&e.record.message.destChain)?;
        let h = src.batch_of_block(e.record.source_block)?;
        let leaf = *src.executed.get(&h.number)?;
        let (height, root, size) = self.sl_block?;
        if size <= leaf {
            return None;
        }
        // reuse a MessageRoot already imported (or asked for) that holds the leaf
        let covers = |i: &ImportedRoot| {
            i.kind == ImportKind::Proof as u8
                && i.messageCount > leaf
                && i.messageCount <= self.global.len()
                && self.global.root_at(i.messageCount).ok() == Some(i.root)
        };
        if let Some(i) = dest.proof_import(leaf + 1..=self.global.len(), covers) {
            return Some(i);
        }
        Some(ImportedRoot {
            kind: ImportKind::Proof as u8,
            sourceChain: SETTLEMENT_LAYER_CHAIN_ID,
            sourceHeight: height,
            root,
            messageCount: size,
        })
    }

    /// Why message `id`, with no root to be executed against, never will have one.
    fn undeliverable_now(&self, id: &MessageId) -> Option<Undeliverable> {
        let e = self.messages.get(id)?;
        (!self.global_ok && e.record.mode == ImportKind::Proof)
            .then_some(Undeliverable::MessageRootDiverged)
    }

    /// Records that `id` can never be delivered and reports it (once).
    fn mark_undeliverable(
        &mut self,
        id: MessageId,
        reason: Undeliverable,
        out: &mut Vec<RelayerAction>,
    ) {
        self.active.remove(&id);
        if let Some(e) = self.messages.get_mut(&id) {
            if e.undeliverable.is_none() {
                e.undeliverable = Some(reason);
                out.push(RelayerAction::Error(RelayerError::Undeliverable {
                    id,
                    reason,
                }));
            }
        }
    }

    /// Moves every pending message as far as the knowledge allows.
    fn progress(&mut self, out: &mut Vec<RelayerAction>) {
        let ids: Vec<MessageId> = self.active.iter().copied().collect();
        for id in ids {
            let Some(e) = self.messages.get(&id) else {
                self.pending.remove(&id);
                self.active.remove(&id);
                continue;
            };
            let dest_id = e.record.message.destChain;
            let Some(dest) = self.chains.get(&dest_id) else {
                // not watched: a withdrawal is claimed on the SL by its recipient; any other
                // destination is one this relayer does not serve
                self.active.remove(&id);
                if dest_id != SETTLEMENT_LAYER_CHAIN_ID {
                    let reason = Undeliverable::UnknownDestination { dest: dest_id };
                    self.mark_undeliverable(id, reason, out);
                }
                continue;
            };
            if let Some(b) = dest.executions.get(&id) {
                let b = *b;
                if let Some(e) = self.messages.get_mut(&id) {
                    e.record.status = MessageStatus::Executed { dest_block: b };
                    e.retry_at = None;
                }
                self.pending.remove(&id);
                self.active.remove(&id);
                continue;
            }
            if matches!(
                e.record.status,
                MessageStatus::Submitted | MessageStatus::Executed { .. }
            ) || e.retry_at.is_some()
                || e.undeliverable.is_some()
            {
                continue;
            }
            // an `aggregated` import the destination refused (too old a checkpoint), or whose
            // tree the relayer no longer holds (dropped, or replaced by a successor's), is
            // replaced by a newer one
            let refused = e.target.as_ref().is_some_and(|t| {
                t.kind == ImportKind::Aggregated as u8
                    && (key_of(t).is_some_and(|k| {
                        !dest.landed.contains_key(&k) && !dest.requested.contains_key(&k)
                    }) || !self.aggregated_target_provable(&e.record.message, t))
            });
            // A message whose execution was dropped moves to the SL MessageRoot as soon as its
            // source batch executed (the strongest root: no revert voids it); a message whose
            // own mode has no root yet takes it too.
            let retried = e.record.attempts > 0;
            let current = e.target.clone().filter(|_| !refused);
            let target = match current {
                Some(t) if t.kind == ImportKind::Proof as u8 || !retried => t,
                current => {
                    let chosen = if retried {
                        self.sl_root_target(&id)
                            .or(current)
                            .or_else(|| self.choose_target(&id))
                    } else {
                        self.choose_target(&id).or_else(|| self.sl_root_target(&id))
                    };
                    match chosen {
                        Some(t) => t,
                        None => {
                            if let Some(reason) = self.undeliverable_now(&id) {
                                self.mark_undeliverable(id, reason, out);
                            }
                            continue;
                        }
                    }
                }
            };
            let Some(key) = key_of(&target) else {
                continue;
            };
            if target.kind == ImportKind::Qc as u8 {
                let (src, height) = (target.sourceChain, target.sourceHeight);
                if let Some(c) = self.chains.get_mut(&src) {
                    if c.postconfirm_asked.insert(height) {
                        out.push(RelayerAction::Postconfirm { chain: src, height });
                    }
                }
            }
            let Some(dest) = self.chains.get(&dest_id) else {
                continue;
            };
            let landed = dest.landed.contains_key(&key);
            if !landed && !dest.requested.contains_key(&key) {
                out.push(RelayerAction::Import {
                    dest: dest_id,
                    root: target.clone(),
                });
            }
            // Pipelining: the destination applies a block's imports before its transactions,
            // so the first execution attempt rides in the same block as the import it needs.
            // If the import does not make it, the shell reports the transaction dropped and the
            // next attempt waits until the import is seen landed.
            let pipelined = self.config.pipeline
                && !landed
                && !retried
                && self.import_applies_at_once(dest, &target);
            let proof = if landed || pipelined {
                self.build_proof(&id, &target)
            } else {
                None
            };
            if let Some(dest) = self.chains.get_mut(&dest_id) {
                if !landed {
                    dest.note_requested(key, target.clone());
                }
            }
            let Some(e) = self.messages.get_mut(&id) else {
                continue;
            };
            e.target = Some(target);
            if landed {
                e.record.status = MessageStatus::Imported;
            } else if e.record.status == MessageStatus::Imported {
                // re-targeted to a root not imported yet
                e.record.status = MessageStatus::Sent {
                    at_block: e.record.source_block,
                };
            }
            if let Some(proof) = proof {
                e.record.status = MessageStatus::Submitted;
                e.record.attempts += 1;
                self.active.remove(&id);
                out.push(RelayerAction::Execute {
                    dest: dest_id,
                    message: e.record.message.clone(),
                    proof,
                });
            }
        }
    }

    /// Where message `id` is and, if it is not executed, what it waits for or why it can never
    /// be delivered.
    pub fn delivery(&self, id: &MessageId) -> Option<DeliveryState> {
        let e = self.messages.get(id)?;
        if let MessageStatus::Executed { dest_block } = e.record.status {
            return Some(DeliveryState::Executed { dest_block });
        }
        if let Some(reason) = e.undeliverable {
            return Some(DeliveryState::Undeliverable(reason));
        }
        let m = &e.record.message;
        let wait = if m.destChain == SETTLEMENT_LAYER_CHAIN_ID
            && !self.chains.contains_key(&m.destChain)
        {
            WaitReason::ClaimedOnSettlementLayer
        } else if e.record.status == MessageStatus::Submitted {
            WaitReason::ExecutionInFlight
        } else if let Some(at) = e.retry_at {
            WaitReason::Backoff {
                retry_at_ms: at,
                drops: e.record.attempts,
            }
        } else if let Some(t) = &e.target {
            let landed = key_of(t)
                .zip(self.chains.get(&m.destChain))
                .is_some_and(|(k, d)| d.landed.contains_key(&k));
            if landed {
                WaitReason::ExecutionInFlight
            } else {
                WaitReason::ImportPending
            }
        } else {
            self.root_wait(e)
        };
        Some(DeliveryState::Waiting(wait))
    }

    /// What a message with no root chosen yet waits for.
    fn root_wait(&self, e: &Entry) -> WaitReason {
        let batch = self
            .chains
            .get(&e.record.message.sourceChain)
            .and_then(|src| Some((src, src.batch_of_block(e.record.source_block)?.number)));
        match e.record.mode {
            ImportKind::Qc => WaitReason::BlockNotCertified,
            ImportKind::Aggregated => WaitReason::TreeNotProven,
            ImportKind::Precommit => WaitReason::ImportPending,
            kind => match batch {
                None => WaitReason::BatchNotSealed,
                Some((src, b)) if kind == ImportKind::Commit && !src.committed.contains(&b) => {
                    WaitReason::BatchNotCommitted
                }
                Some((src, b)) if kind == ImportKind::Optimistic && !src.proven.contains(&b) => {
                    WaitReason::BatchNotProven
                }
                Some(_) => WaitReason::BatchNotExecuted,
            },
        }
    }

    /// Messages the relayer found it can never deliver, with the reason.
    pub fn undeliverable_messages(&self) -> impl Iterator<Item = (&MessageRecord, Undeliverable)> {
        self.messages
            .values()
            .filter_map(|e| Some((&e.record, e.undeliverable?)))
    }

    /// Where message `id` is, if the relayer carries it.
    pub fn status(&self, id: &MessageId) -> Option<MessageStatus> {
        self.messages.get(id).map(|e| e.record.status)
    }

    /// One message the relayer carries.
    pub fn message(&self, id: &MessageId) -> Option<&MessageRecord> {
        self.messages.get(id).map(|e| &e.record)
    }

    /// Every message the relayer carries, by id.
    pub fn messages(&self) -> impl Iterator<Item = &MessageRecord> + '_ {
        self.messages.values().map(|e| &e.record)
    }

    /// Messages not executed yet, by id.
    pub fn pending_messages(&self) -> impl Iterator<Item = &MessageRecord> + '_ {
        self.pending
            .iter()
            .filter_map(|id| self.messages.get(id).map(|e| &e.record))
    }

    /// The mirrored message tree of a watched chain.
    pub fn source_tree(&self, chain: ChainId) -> Option<&MessageTree> {
        self.chains.get(&chain).map(|c| &c.tree)
    }

    /// The mirrored global MessageRoot tree (stops growing if it diverged, see
    /// [`Relayer::message_root_in_sync`]).
    pub fn message_root_tree(&self) -> &MessageTree {
        &self.global
    }

    /// Whether the global MessageRoot mirror still matches the settlement layer.
    pub fn message_root_in_sync(&self) -> bool {
        self.global_ok
    }

    /// The sealed batch of `chain` holding `block`, if seen.
    pub fn batch_of_block(&self, chain: ChainId, block: BlockNumber) -> Option<&BatchHeader> {
        self.chains.get(&chain)?.batch_of_block(block)
    }

    /// How many reverts of `chain`'s batches the relayer has seen on the SL: the source epoch
    /// an import it sends now belongs to. A destination that has seen more reverts of the
    /// source refuses an import of an older epoch that a later revert voided
    /// (`braid_driver::ChainRole::import`): it was built from blocks that no longer exist.
    pub fn source_epoch(&self, chain: ChainId) -> u64 {
        self.chains.get(&chain).map_or(0, |c| c.reverts)
    }

    /// The last block seen of `chain`.
    pub fn last_block(&self, chain: ChainId) -> Option<BlockNumber> {
        self.chains
            .get(&chain)?
            .blocks
            .last_key_value()
            .map(|(n, _)| *n)
    }

    /// Proof that `import` (a root of `source`'s message tree, `import.messageCount` leaves) is
    /// a prefix of the mirrored tree of `target_count` leaves. `None` if the mirror does not hold
    /// `target_count` leaves or `import.root` is not the mirrored root at its size.
    pub fn extension_proof(
        &self,
        source: ChainId,
        import: &ImportedRoot,
        target_count: u64,
    ) -> Option<ExtensionProof> {
        let tree = &self.chains.get(&source)?.tree;
        if tree.root_at(import.messageCount).ok()? != import.root {
            return None;
        }
        tree.extension_proof(import.messageCount, target_count).ok()
    }

    /// The extension proof the SL needs for a `precommit` import: from the imported LocalRoot
    /// to the ChainBatchRoot of the source batch holding the imported block, once that batch
    /// is sealed.
    pub fn precommit_extension(&self, import: &ImportedRoot) -> Option<ExtensionProof> {
        let h = self.batch_of_block(import.sourceChain, import.sourceHeight)?;
        self.extension_proof(import.sourceChain, import, h.messageCount)
    }
}

#[cfg(test)]
mod tests;
