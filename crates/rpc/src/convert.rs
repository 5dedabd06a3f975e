//! Braid blocks, transactions and receipts rendered as `alloy-rpc-types-eth` values.

use alloy_consensus::{
    constants::EMPTY_OMMER_ROOT_HASH, proofs::calculate_receipt_root, transaction::Recovered,
    Eip658Value, Receipt, ReceiptEnvelope, ReceiptWithBloom, TxEnvelope,
};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Bloom, Bytes, B256, B64, U256};
use alloy_rpc_types_eth::{
    Block as RpcBlock, BlockTransactions, Header as RpcHeader, Log as RpcLog, Transaction,
    TransactionReceipt,
};
use braid_execution::{RecoveredTx, TxReceipt};
use braid_primitives::Block;

use crate::RpcError;

/// A block with its receipts, as the backend returns it.
pub(crate) type StoredBlock = (Block, Vec<TxReceipt>);

/// Unix seconds of a Braid block.
pub(crate) fn timestamp_secs(block: &Block) -> u64 {
    block.header.timestampMs / 1000
}

fn decode_envelope(raw: &Bytes, number: u64, index: usize) -> Result<TxEnvelope, RpcError> {
    let mut buf = raw.as_ref();
    TxEnvelope::decode_2718(&mut buf).map_err(|e| {
        RpcError::internal(format!(
            "stored transaction {index} of block {number} does not decode: {e}"
        ))
    })
}

fn receipt_for((block, receipts): &StoredBlock, index: usize) -> Result<&TxReceipt, RpcError> {
    receipts.get(index).ok_or_else(|| {
        RpcError::internal(format!(
            "block {} has no receipt for transaction {index}",
            block.header.number
        ))
    })
}

/// The consensus receipt of transaction `index` (status 1: Braid never includes failed
/// transactions), with its bloom.
fn consensus_receipt(
    stored: &StoredBlock,
    index: usize,
) -> Result<ReceiptEnvelope<alloy_primitives::Log>, RpcError> {
    let (block, _) = stored;
    let receipt = receipt_for(stored, index)?;
    let raw = block.transactions.get(index).ok_or_else(|| {
        RpcError::internal(format!(
            "block {} has no transaction {index}",
            block.header.number
        ))
    })?;
    let envelope = decode_envelope(raw, block.header.number, index)?;
    let inner = Receipt {
        status: Eip658Value::Eip658(true),
        cumulative_gas_used: receipt.cumulative_gas_used,
        logs: receipt.logs.clone(),
    };
    Ok(ReceiptEnvelope::from_typed(
        envelope.tx_type(),
        ReceiptWithBloom::from(inner),
    ))
}

/// The block's logs with their positions filled, in block order.
pub(crate) fn block_logs(stored: &StoredBlock) -> Vec<RpcLog> {
    let (block, receipts) = stored;
    let hash = block.header.hash();
    let mut out = Vec::new();
    for (tx_index, receipt) in receipts.iter().enumerate() {
        for log in &receipt.logs {
            out.push(RpcLog {
                inner: log.clone(),
                block_hash: Some(hash),
                block_number: Some(block.header.number),
                block_timestamp: Some(timestamp_secs(block)),
                transaction_hash: Some(receipt.tx_hash),
                transaction_index: Some(tx_index as u64),
                log_index: Some(out.len() as u64),
                removed: false,
            });
        }
    }
    out
}

/// The Ethereum-shaped header of a Braid block (see the crate docs for the field mapping).
pub(crate) fn rpc_header(stored: &StoredBlock) -> Result<RpcHeader, RpcError> {
    let (block, receipts) = stored;
    let h = &block.header;
    let mut envelopes = Vec::with_capacity(receipts.len());
    let mut bloom = Bloom::ZERO;
    for index in 0..block.transactions.len() {
        let r = consensus_receipt(stored, index)?;
        bloom.accrue_bloom(r.logs_bloom());
        envelopes.push(r);
    }
    let size = 15 * 32
        + block
            .transactions
            .iter()
            .map(|t| t.len() as u64)
            .sum::<u64>();
    Ok(RpcHeader {
        hash: h.hash(),
        inner: alloy_consensus::Header {
            parent_hash: h.parentHash,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: h.sequencer,
            state_root: h.stateRoot,
            transactions_root: h.txRoot,
            receipts_root: calculate_receipt_root(&envelopes),
            logs_bloom: bloom,
            difficulty: U256::ZERO,
            number: h.number,
            gas_limit: h.gasLimit,
            gas_used: h.gasUsed,
            timestamp: timestamp_secs(block),
            extra_data: Bytes::new(),
            mix_hash: B256::ZERO,
            nonce: B64::ZERO,
            base_fee_per_gas: Some(u64::try_from(h.baseFee).unwrap_or(u64::MAX)),
            withdrawals_root: None,
            blob_gas_used: None,
            excess_blob_gas: None,
            parent_beacon_block_root: None,
            requests_hash: None,
            block_access_list_hash: None,
            slot_number: None,
        },
        total_difficulty: None,
        size: Some(U256::from(size)),
    })
}

/// Transaction `index` of an included block.
pub(crate) fn included_tx(stored: &StoredBlock, index: usize) -> Result<Transaction, RpcError> {
    let (block, _) = stored;
    let receipt = receipt_for(stored, index)?;
    let raw = block.transactions.get(index).ok_or_else(|| {
        RpcError::internal(format!(
            "block {} has no transaction {index}",
            block.header.number
        ))
    })?;
    let envelope = decode_envelope(raw, block.header.number, index)?;
    Ok(Transaction {
        inner: Recovered::new_unchecked(envelope, receipt.from),
        block_hash: Some(block.header.hash()),
        block_number: Some(block.header.number),
        transaction_index: Some(index as u64),
        effective_gas_price: Some(receipt.effective_gas_price),
        block_timestamp: Some(timestamp_secs(block)),
    })
}

/// A pooled transaction (no block fields).
pub(crate) fn pending_tx(tx: RecoveredTx) -> Transaction {
    Transaction {
        inner: Recovered::new_unchecked(tx.envelope, tx.sender),
        block_hash: None,
        block_number: None,
        transaction_index: None,
        effective_gas_price: None,
        block_timestamp: None,
    }
}

/// A block, with full transactions or their hashes.
pub(crate) fn rpc_block(stored: &StoredBlock, full: bool) -> Result<RpcBlock, RpcError> {
    let header = rpc_header(stored)?;
    let (block, receipts) = stored;
    let transactions = if full {
        let txs = (0..block.transactions.len())
            .map(|i| included_tx(stored, i))
            .collect::<Result<Vec<_>, _>>()?;
        BlockTransactions::Full(txs)
    } else {
        BlockTransactions::Hashes(receipts.iter().map(|r| r.tx_hash).collect())
    };
    Ok(RpcBlock {
        header,
        uncles: vec![],
        transactions,
        withdrawals: None,
    })
}

/// The receipt of transaction `index` of an included block.
pub(crate) fn rpc_receipt(
    stored: &StoredBlock,
    index: usize,
) -> Result<TransactionReceipt, RpcError> {
    let (block, _) = stored;
    let receipt = receipt_for(stored, index)?;
    let first_log_index: usize = stored
        .1
        .iter()
        .take(index)
        .map(|r| r.logs.len())
        .sum::<usize>();
    let hash = block.header.hash();
    let mut log_index = first_log_index as u64;
    let envelope = consensus_receipt(stored, index)?.map_logs(|log| {
        let rpc = RpcLog {
            inner: log,
            block_hash: Some(hash),
            block_number: Some(block.header.number),
            block_timestamp: Some(timestamp_secs(block)),
            transaction_hash: Some(receipt.tx_hash),
            transaction_index: Some(index as u64),
            log_index: Some(log_index),
            removed: false,
        };
        log_index += 1;
        rpc
    });
    Ok(TransactionReceipt {
        inner: envelope,
        transaction_hash: receipt.tx_hash,
        transaction_index: Some(index as u64),
        block_hash: Some(hash),
        block_number: Some(block.header.number),
        gas_used: receipt.gas_used,
        effective_gas_price: receipt.effective_gas_price,
        blob_gas_used: None,
        blob_gas_price: None,
        from: receipt.from,
        to: Some(receipt.to),
        contract_address: None,
    })
}

/// Tip percentiles of one block, geth's algorithm: transactions sorted by the tip they paid,
/// each weighted by its gas used; an empty block reports zeros.
pub(crate) fn reward_percentiles(stored: &StoredBlock, percentiles: &[f64]) -> Vec<u128> {
    let (block, receipts) = stored;
    let base_fee = block.header.baseFee;
    let mut tips: Vec<(u128, u64)> = receipts
        .iter()
        .map(|r| (r.effective_gas_price.saturating_sub(base_fee), r.gas_used))
        .collect();
    if tips.is_empty() || block.header.gasUsed == 0 {
        return vec![0; percentiles.len()];
    }
    tips.sort_unstable();
    let total_gas = block.header.gasUsed as f64;
    let mut out = Vec::with_capacity(percentiles.len());
    let mut i = 0usize;
    let mut sum_gas = tips.first().map_or(0, |t| t.1) as f64;
    for p in percentiles {
        let threshold = total_gas * p / 100.0;
        while sum_gas < threshold && i + 1 < tips.len() {
            i += 1;
            sum_gas += tips.get(i).map_or(0, |t| t.1) as f64;
        }
        out.push(tips.get(i).map_or(0, |t| t.0));
    }
    out
}
