//! A bounded transaction pool: per-sender nonce order, replacement by a higher fee.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use alloy_primitives::{Address, B256};
use braid_execution::RecoveredTx;

/// Limits of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MempoolConfig {
    /// Most transactions held in total.
    pub max_txs: usize,
    /// Most transactions held per sender.
    pub max_per_sender: usize,
    /// Furthest a nonce may be ahead of the sender's account nonce.
    pub max_nonce_gap: u64,
    /// Percent by which a replacement must raise both the fee cap and the tip.
    pub price_bump_percent: u128,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        Self {
            max_txs: 8192,
            max_per_sender: 64,
            max_nonce_gap: 64,
            price_bump_percent: 10,
        }
    }
}

/// Why the pool refused a transaction.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MempoolError {
    /// The exact transaction is already pooled.
    #[error("transaction {0} already known")]
    AlreadyKnown(B256),
    /// A transaction with the same sender and nonce is pooled and the new one does not pay
    /// enough more.
    #[error("replacement for nonce {nonce} underpriced: needs fee cap >= {min_max_fee} and tip >= {min_tip}")]
    ReplacementUnderpriced {
        /// The contested nonce.
        nonce: u64,
        /// Minimum fee cap of a replacement.
        min_max_fee: u128,
        /// Minimum tip of a replacement.
        min_tip: u128,
    },
    /// The nonce is too far ahead of the account's.
    #[error("nonce {got} is more than {max_gap} ahead of the account nonce {expected}")]
    NonceTooFarAhead {
        /// Account nonce.
        expected: u64,
        /// Transaction nonce.
        got: u64,
        /// Allowed gap.
        max_gap: u64,
    },
    /// The sender has too many pooled transactions.
    #[error("sender {sender} already has {limit} pooled transactions")]
    SenderFull {
        /// The sender.
        sender: Address,
        /// The limit.
        limit: usize,
    },
    /// The pool is full.
    #[error("transaction pool is full ({limit} transactions)")]
    PoolFull {
        /// The limit.
        limit: usize,
    },
    /// A transaction of a discarded block finds another one pooled at its nonce.
    #[error("nonce {nonce} is taken by a pooled transaction")]
    NonceTaken {
        /// The nonce.
        nonce: u64,
    },
}

/// The pool.
#[derive(Debug, Clone, Default)]
pub struct Mempool {
    config: MempoolConfig,
    by_sender: BTreeMap<Address, BTreeMap<u64, RecoveredTx>>,
    by_hash: HashMap<B256, (Address, u64)>,
}

impl Mempool {
    /// An empty pool with these limits.
    pub fn new(config: MempoolConfig) -> Self {
        Self {
            config,
            ..Default::default()
        }
    }

    /// Number of pooled transactions.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Whether a transaction is pooled.
    pub fn contains(&self, hash: &B256) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// A pooled transaction by hash.
    pub fn get(&self, hash: &B256) -> Option<&RecoveredTx> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        self.by_sender.get(sender)?.get(nonce)
    }

    /// Adds `tx` (whose sender's account nonce is `account_nonce`, already checked to be
    /// `<= tx.nonce()`). Returns the hash of a transaction it displaced, if any: one with the
    /// same nonce it replaced (price bump), or, when the sender's queue is full and `tx` fills
    /// a gap below its pooled transactions, the sender's highest-nonce one.
    pub fn insert(
        &mut self,
        tx: RecoveredTx,
        account_nonce: u64,
    ) -> Result<Option<B256>, MempoolError> {
        if self.by_hash.contains_key(&tx.hash) {
            return Err(MempoolError::AlreadyKnown(tx.hash));
        }
        let nonce = tx.nonce();
        if nonce > account_nonce.saturating_add(self.config.max_nonce_gap) {
            return Err(MempoolError::NonceTooFarAhead {
                expected: account_nonce,
                got: nonce,
                max_gap: self.config.max_nonce_gap,
            });
        }
        let queue = self.by_sender.get(&tx.sender);
        if let Some(old) = queue.and_then(|q| q.get(&nonce)) {
            let bump =
                |x: u128| x.saturating_add(x.saturating_mul(self.config.price_bump_percent) / 100);
            let min_max_fee = bump(old.max_fee_per_gas());
            let min_tip = bump(old.max_priority_fee_per_gas());
            if tx.max_fee_per_gas() < min_max_fee || tx.max_priority_fee_per_gas() < min_tip {
                return Err(MempoolError::ReplacementUnderpriced {
                    nonce,
                    min_max_fee,
                    min_tip,
                });
            }
            let old_hash = old.hash;
            self.by_hash.remove(&old_hash);
            self.by_hash.insert(tx.hash, (tx.sender, nonce));
            self.by_sender
                .entry(tx.sender)
                .or_default()
                .insert(nonce, tx);
            return Ok(Some(old_hash));
        }
        let mut evicted = None;
        if queue.map_or(0, |q| q.len()) >= self.config.max_per_sender {
            // A transaction filling a gap below the sender's pooled ones evicts the highest:
            // otherwise a sender whose transaction failed in a block would be stuck behind the
            // gap with a full queue, unable to fill it.
            let highest = queue
                .and_then(|q| q.last_key_value())
                .map(|(n, t)| (*n, t.hash));
            match highest {
                Some((top, hash)) if nonce < top => evicted = Some(hash),
                _ => {
                    return Err(MempoolError::SenderFull {
                        sender: tx.sender,
                        limit: self.config.max_per_sender,
                    })
                }
            }
        }
        if let Some(hash) = evicted {
            self.remove(&hash);
        }
        if self.by_hash.len() >= self.config.max_txs {
            return Err(MempoolError::PoolFull {
                limit: self.config.max_txs,
            });
        }
        self.by_hash.insert(tx.hash, (tx.sender, nonce));
        self.by_sender
            .entry(tx.sender)
            .or_default()
            .insert(nonce, tx);
        Ok(evicted)
    }

    /// Puts back a transaction of a block a revert discarded. The chain accepted and included
    /// it once, so the pool's size limits (per sender, nonce gap, total) do not apply: a sender
    /// with a long run of included transactions gets all of them back, not the first 64. A
    /// pooled transaction with the same nonce (sent after the block was built) is kept and the
    /// discarded one is refused (`NonceTaken`); a duplicate is `AlreadyKnown`.
    pub fn reinsert(&mut self, tx: RecoveredTx) -> Result<(), MempoolError> {
        if self.by_hash.contains_key(&tx.hash) {
            return Err(MempoolError::AlreadyKnown(tx.hash));
        }
        let nonce = tx.nonce();
        if self
            .by_sender
            .get(&tx.sender)
            .is_some_and(|q| q.contains_key(&nonce))
        {
            return Err(MempoolError::NonceTaken { nonce });
        }
        self.by_hash.insert(tx.hash, (tx.sender, nonce));
        self.by_sender
            .entry(tx.sender)
            .or_default()
            .insert(nonce, tx);
        Ok(())
    }

    /// The next nonce `sender` should use: `account_nonce` plus its consecutive pooled
    /// transactions from there.
    pub fn pending_nonce(&self, sender: &Address, account_nonce: u64) -> u64 {
        let Some(queue) = self.by_sender.get(sender) else {
            return account_nonce;
        };
        let mut next = account_nonce;
        while queue.contains_key(&next) {
            next += 1;
        }
        next
    }

    /// Whether `sender` has a pooled transaction with a nonce above `nonce` (transactions
    /// waiting behind a gap at `nonce`, when `nonce` is [`Mempool::pending_nonce`]).
    pub fn has_nonce_above(&self, sender: &Address, nonce: u64) -> bool {
        self.by_sender
            .get(sender)
            .and_then(|q| q.last_key_value())
            .is_some_and(|(n, _)| *n > nonce)
    }

    /// Removes a transaction by hash.
    pub fn remove(&mut self, hash: &B256) -> Option<RecoveredTx> {
        let (sender, nonce) = self.by_hash.remove(hash)?;
        let queue = self.by_sender.get_mut(&sender)?;
        let tx = queue.remove(&nonce);
        if queue.is_empty() {
            self.by_sender.remove(&sender);
        }
        tx
    }

    /// Drops every transaction of `sender` with a nonce below `next_nonce` (included or stale).
    pub fn prune_sender(&mut self, sender: &Address, next_nonce: u64) {
        if let Some(queue) = self.by_sender.get_mut(sender) {
            let keep = queue.split_off(&next_nonce);
            for tx in queue.values() {
                self.by_hash.remove(&tx.hash);
            }
            *queue = keep;
            if queue.is_empty() {
                self.by_sender.remove(sender);
            }
        }
    }

    /// Executable transactions in inclusion order: each sender's consecutive run starting at its
    /// account nonce, interleaved greedily by the tip they pay at `base_fee` (highest first, ties
    /// by sender address so the order is deterministic). Transactions whose fee cap is below the
    /// base fee wait.
    pub fn ready(
        &self,
        account_nonce: impl Fn(&Address) -> u64,
        base_fee: u128,
    ) -> Vec<RecoveredTx> {
        // per-sender runs of consecutive nonces
        let mut runs: Vec<Vec<&RecoveredTx>> = Vec::new();
        for (sender, queue) in &self.by_sender {
            let start = account_nonce(sender);
            let mut run: Vec<&RecoveredTx> = (start..)
                .zip(queue.range(start..))
                .take_while(|(expected, (nonce, _))| *nonce == expected)
                .map(|(_, (_, tx))| tx)
                .collect();
            if !run.is_empty() {
                run.reverse(); // pop() from the back yields the lowest nonce first
                runs.push(run);
            }
        }
        // the head of every run, best first: highest tip, then lowest sender address (the runs
        // are in address order); a heap, not a scan of every run per transaction
        let mut heads = BinaryHeap::with_capacity(runs.len());
        for (i, run) in runs.iter().enumerate() {
            if let Some(tip) = run.last().and_then(|tx| tx.effective_tip(base_fee)) {
                heads.push((tip, Reverse(i)));
            }
        }
        let mut out = Vec::new();
        while let Some((_, Reverse(i))) = heads.pop() {
            let Some(run) = runs.get_mut(i) else { continue };
            if let Some(tx) = run.pop() {
                out.push(tx.clone());
            }
            if let Some(tip) = run.last().and_then(|tx| tx.effective_tip(base_fee)) {
                heads.push((tip, Reverse(i)));
            }
        }
        out
    }
}
