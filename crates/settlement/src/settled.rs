//! Finality of unexecuted batches: what the SL never reverts, and the checks that make that
//! refusal safe (see "What is never reverted" in the crate docs).

use std::collections::BTreeSet;

use braid_primitives::{BatchNumber, ChainId, ImportKind, ImportedRoot};

use crate::{aggregated, BatchRecord, BatchStatus, Finality, SettlementError, SettlementLayer};

/// Chains whose postconfirmed finality is being judged (a cycle of imports is judged not
/// final).
type Visiting = BTreeSet<ChainId>;

impl SettlementLayer {
    /// Whether `chain`'s batch `batch` is final, and why: executed, settled by an accepted
    /// aggregation root, or covered by a postconfirmation whose chain history imports only
    /// final roots. `None`: not committed, or still revertible.
    pub fn finality(&self, chain: ChainId, batch: BatchNumber) -> Option<Finality> {
        self.finality_in(chain, batch, &mut Visiting::new())
    }

    fn finality_in(
        &self,
        chain_id: ChainId,
        batch: BatchNumber,
        visiting: &mut Visiting,
    ) -> Option<Finality> {
        let chain = self.chains.get(&chain_id)?;
        let rec = chain.batches.get(&batch)?;
        if rec.status == BatchStatus::Executed || batch <= chain.last_executed {
            return Some(Finality::Executed);
        }
        if let Some(checkpoint) = self.root_settled(chain_id, rec) {
            return Some(Finality::Root { checkpoint });
        }
        // postconfirmed: within the chain's unexecuted batches that import only final roots
        // (a prefix), one from `batch` on ends in a postconfirmed block
        let certified_from = |first| {
            self.staking
                .postconfirmed
                .get(&chain_id)
                .is_some_and(|c| c.range(first..).next().is_some())
        };
        if !certified_from(rec.header.firstBlock) || !visiting.insert(chain_id) {
            // nothing postconfirmed from here on, or an import cycle back to this chain (not
            // final on its own)
            return None;
        }
        let mut block = None;
        for (_, b) in chain.batches.range(chain.last_executed + 1..) {
            let clean = self.censorship(b).is_none()
                && b.imports
                    .iter()
                    .all(|i| self.import_final_in(chain_id, i, visiting).is_ok());
            if !clean {
                break;
            }
            if b.header.number >= batch && self.ends_postconfirmed(chain_id, b) {
                block = Some(b.header.lastBlock);
            }
        }
        visiting.remove(&chain_id);
        block.map(|block| Finality::Postconfirmed { block })
    }

    /// The checkpoint whose accepted root settled a tree chain's batch.
    fn root_settled(&self, chain: ChainId, rec: &BatchRecord) -> Option<u64> {
        let config = &self.config.aggregation;
        if !config.covers(chain) || rec.status == BatchStatus::Committed {
            return None;
        }
        let accepted = self.aggregation.roots()?.checkpoint();
        let checkpoint = rec.header.lastBlock.div_ceil(config.checkpoint_blocks);
        (checkpoint >= 1 && checkpoint <= accepted).then_some(checkpoint)
    }

    /// Whether `rec`'s last block is postconfirmed and the batch record is that block's: same
    /// block hash, and the header's state root, ChainBatchRoot and message count are the
    /// certified block's (a tampered record is not made final by its block's certificate).
    fn ends_postconfirmed(&self, chain: ChainId, rec: &BatchRecord) -> bool {
        let h = &rec.header;
        let Some(p) = self
            .staking
            .postconfirmed
            .get(&chain)
            .and_then(|c| c.get(&h.lastBlock))
        else {
            return false;
        };
        p.block_hash == h.lastBlockHash
            && p.local_root == h.chainBatchRoot
            && p.message_count == h.messageCount
            && rec.blocks.last().is_some_and(|b| {
                b.header.hash() == h.lastBlockHash && b.header.stateRoot == h.stateRoot
            })
    }

    /// `Some(reason)` if `rec` censored a deposit (it can never execute).
    pub(crate) fn censorship(&self, rec: &BatchRecord) -> Option<String> {
        let chain = self.chains.get(&rec.header.chainId)?;
        let d = chain.deposits.get(rec.deposit_count_after as usize)?;
        let deadline = d
            .queuedAtMs
            .saturating_add(self.config.deposit_inclusion_window_ms);
        (rec.last_block_timestamp_ms > deadline).then(|| {
            format!(
                "censored deposit {}: queued at {} ms, not included by block time {} ms",
                d.index, d.queuedAtMs, rec.last_block_timestamp_ms
            )
        })
    }

    /// `Ok` if `import` (by `importer`) is final: its root can never be reverted and it matches
    /// what it claims (so the import check at execution can pass); `Err` says why not.
    pub fn import_final(&self, importer: ChainId, import: &ImportedRoot) -> Result<(), String> {
        self.import_final_in(importer, import, &mut Visiting::new())
    }

    fn import_final_in(
        &self,
        importer: ChainId,
        import: &ImportedRoot,
        visiting: &mut Visiting,
    ) -> Result<(), String> {
        let source = import.sourceChain;
        let kind = import.import_kind().map_err(|e| e.to_string())?;
        let final_batch = |batch: BatchNumber, visiting: &mut Visiting| {
            self.finality_in(source, batch, visiting)
                .map(|_| ())
                .ok_or_else(|| format!("batch {batch} of chain {source} can still be reverted"))
        };
        match kind {
            ImportKind::Proof => {
                if self.historical_roots.contains(&import.root) {
                    Ok(())
                } else {
                    Err(format!("{} is not a historical MessageRoot", import.root))
                }
            }
            ImportKind::Aggregated => {
                // a node hash of an accepted tree: every chain under it is root-settled through
                // the checkpoint
                if self.aggregated_import_contradicted(importer, import) {
                    return Err("the accepted tree contradicts it".into());
                }
                let position =
                    self.config.aggregation.position(importer).ok_or_else(|| {
                        format!("chain {importer} is not in the aggregation tree")
                    })?;
                aggregated::tree_import(position, import)
                    .ok_or_else(|| "not a tree node".to_string())?;
                if self.aggregation.snapshot(import.sourceHeight).is_some() {
                    Ok(())
                } else {
                    Err(format!(
                        "no root of checkpoint {} is accepted",
                        import.sourceHeight
                    ))
                }
            }
            ImportKind::Commit | ImportKind::Optimistic => {
                let rec = self.batch(source, import.sourceHeight).ok_or_else(|| {
                    format!(
                        "batch {} of chain {source} is not committed",
                        import.sourceHeight
                    )
                })?;
                if rec.header.chainBatchRoot != import.root
                    || rec.header.messageCount != import.messageCount
                {
                    return Err("it does not match the source's ChainBatchRoot".into());
                }
                final_batch(import.sourceHeight, visiting)
            }
            ImportKind::Precommit | ImportKind::Qc => {
                if kind == ImportKind::Qc {
                    let p = self
                        .staking
                        .postconfirmed
                        .get(&source)
                        .and_then(|c| c.get(&import.sourceHeight))
                        .ok_or("its block is not postconfirmed")?;
                    if p.local_root != import.root || p.message_count != import.messageCount {
                        return Err("it is not the postconfirmed block's LocalRoot".into());
                    }
                }
                if import.sourceHeight == 0 {
                    return if import.root == braid_merkle::empty_root() && import.messageCount == 0
                    {
                        Ok(())
                    } else {
                        Err("it is not the genesis LocalRoot".into())
                    };
                }
                let rec = self
                    .chains
                    .get(&source)
                    .and_then(|c| c.batch_holding_block(import.sourceHeight))
                    .ok_or_else(|| {
                        format!(
                            "block {} of chain {source} is in no committed batch",
                            import.sourceHeight
                        )
                    })?;
                let offset = (import.sourceHeight - rec.header.firstBlock) as usize;
                if rec.local_roots.get(offset) != Some(&(import.root, import.messageCount)) {
                    return Err(format!(
                        "it is not the LocalRoot of committed block {}",
                        import.sourceHeight
                    ));
                }
                final_batch(rec.header.number, visiting)
            }
        }
    }

    /// `Ok` once a root of `checkpoint` may settle the tree chains: every unexecuted batch it
    /// would make final (each tree chain's through the checkpoint's last block) imports only
    /// final roots (its tree imports are settled by the root itself) and censored no deposit.
    /// Until then [`SettlementError::UnsettledImport`] names the first import it waits on.
    pub fn checkpoint_imports_settled(&self, checkpoint: u64) -> Result<(), SettlementError> {
        let config = &self.config.aggregation;
        let last_block = checkpoint.saturating_mul(config.checkpoint_blocks);
        for chain_id in &config.chains {
            let Some(chain) = self.chains.get(chain_id) else {
                continue;
            };
            for (n, rec) in chain.batches.range(chain.last_executed + 1..) {
                if rec.header.lastBlock > last_block {
                    break;
                }
                if let Some(reason) = self.censorship(rec) {
                    return Err(SettlementError::UnsettledImport {
                        chain: *chain_id,
                        batch: *n,
                        import: "a deposit".into(),
                        reason,
                    });
                }
                for import in &rec.imports {
                    if import.kind == ImportKind::Aggregated as u8 {
                        continue; // settled inside the tree, by this root's chain
                    }
                    if let Err(reason) = self.import_final(*chain_id, import) {
                        let mode = import.import_kind().map_or("unknown", |k| k.name());
                        return Err(SettlementError::UnsettledImport {
                            chain: *chain_id,
                            batch: *n,
                            import: format!(
                                "{mode} {}/{}",
                                import.sourceChain, import.sourceHeight
                            ),
                            reason,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}
