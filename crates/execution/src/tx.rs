//! Decoding and sender recovery of standard signed Ethereum transactions.

use alloy_consensus::{
    transaction::SignerRecoverable, EthereumTxEnvelope, SignableTransaction, Transaction,
    TxEip1559, TxEnvelope, TxLegacy,
};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{Address, Bytes, Signature, TxKind, B256, U256};
use braid_primitives::ChainId;

use crate::ExecutionError;

/// Largest accepted raw transaction (EIP-2718 bytes), like geth's 128 KiB pool limit.
pub const MAX_TX_BYTES: usize = 128 * 1024;

/// A decoded transaction whose signature was checked and whose sender was recovered.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveredTx {
    /// The decoded envelope (legacy EIP-155 or EIP-1559).
    pub envelope: TxEnvelope,
    /// The recovered sender.
    pub sender: Address,
    /// Transaction hash (keccak256 of the EIP-2718 encoding).
    pub hash: B256,
    /// The raw EIP-2718 bytes as received.
    pub raw: Bytes,
}

impl RecoveredTx {
    /// Decodes raw EIP-2718 bytes, enforcing the size limit, the supported types, EIP-155 replay
    /// protection for legacy transactions, and a recoverable low-s signature.
    pub fn decode(raw: &[u8]) -> Result<Self, ExecutionError> {
        if raw.len() > MAX_TX_BYTES {
            return Err(ExecutionError::TxTooLarge {
                size: raw.len(),
                max: MAX_TX_BYTES,
            });
        }
        let mut buf = raw;
        let envelope =
            TxEnvelope::decode_2718(&mut buf).map_err(|e| ExecutionError::MalformedTx {
                reason: e.to_string(),
            })?;
        if !buf.is_empty() {
            return Err(ExecutionError::MalformedTx {
                reason: format!("{} trailing bytes after the transaction", buf.len()),
            });
        }
        match &envelope {
            EthereumTxEnvelope::Legacy(tx) => {
                if tx.tx().chain_id.is_none() {
                    return Err(ExecutionError::MissingChainId);
                }
            }
            EthereumTxEnvelope::Eip1559(_) => {}
            other => {
                return Err(ExecutionError::UnsupportedTxType {
                    tx_type: other.tx_type() as u8,
                })
            }
        }
        let sender = envelope
            .recover_signer()
            .map_err(|e| ExecutionError::BadSignature {
                reason: e.to_string(),
            })?;
        let hash = *envelope.tx_hash();
        Ok(Self {
            envelope,
            sender,
            hash,
            raw: Bytes::copy_from_slice(raw),
        })
    }

    /// The chain id the transaction was signed for.
    pub fn chain_id(&self) -> Option<ChainId> {
        self.envelope.chain_id()
    }
    /// The sender's nonce.
    pub fn nonce(&self) -> u64 {
        self.envelope.nonce()
    }
    /// The gas limit.
    pub fn gas_limit(&self) -> u64 {
        self.envelope.gas_limit()
    }
    /// The fee cap per gas (the gas price for legacy transactions).
    pub fn max_fee_per_gas(&self) -> u128 {
        self.envelope.max_fee_per_gas()
    }
    /// The priority fee cap per gas (the gas price for legacy transactions).
    pub fn max_priority_fee_per_gas(&self) -> u128 {
        self.envelope
            .max_priority_fee_per_gas()
            .unwrap_or_else(|| self.envelope.max_fee_per_gas())
    }
    /// The tip per gas paid to the sequencer at `base_fee`, if the fee cap covers the base fee.
    pub fn effective_tip(&self, base_fee: u128) -> Option<u128> {
        let max_fee = self.max_fee_per_gas();
        if max_fee < base_fee {
            return None;
        }
        Some(self.max_priority_fee_per_gas().min(max_fee - base_fee))
    }
    /// The recipient (`None` for contract creation).
    pub fn to(&self) -> Option<Address> {
        match self.envelope.kind() {
            TxKind::Call(to) => Some(to),
            TxKind::Create => None,
        }
    }
    /// The value transferred.
    pub fn value(&self) -> U256 {
        self.envelope.value()
    }
    /// The calldata.
    pub fn input(&self) -> &Bytes {
        self.envelope.input()
    }
}

/// Signs transactions with a secp256k1 key: dev accounts, tests, benchmarks and the relayer.
#[derive(Clone)]
pub struct TxSigner {
    secret: B256,
    address: Address,
}

impl std::fmt::Debug for TxSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxSigner")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl TxSigner {
    /// A signer from a 32-byte secret key; fails for zero or out-of-range keys.
    pub fn from_secret(secret: B256) -> Result<Self, ExecutionError> {
        let key = k256::ecdsa::SigningKey::from_slice(secret.as_slice()).map_err(|e| {
            ExecutionError::BadSignature {
                reason: format!("bad secret key: {e}"),
            }
        })?;
        let address = Address::from_public_key(key.verifying_key());
        Ok(Self { secret, address })
    }

    /// The secret key of the `i`-th development account: keccak256("braid dev account" ‖ i as
    /// 4 big-endian bytes) (re-hashed in the negligible case it is not a valid scalar).
    pub fn dev_secret(i: u32) -> B256 {
        let mut seed = b"braid dev account".to_vec();
        seed.extend_from_slice(&i.to_be_bytes());
        let mut secret = alloy_primitives::keccak256(&seed);
        while k256::ecdsa::SigningKey::from_slice(secret.as_slice()).is_err() {
            secret = alloy_primitives::keccak256(secret);
        }
        secret
    }

    /// The `i`-th deterministic development account (key [`TxSigner::dev_secret`]).
    pub fn dev(i: u32) -> Self {
        let mut secret = Self::dev_secret(i);
        // keccak output is a valid scalar except with negligible probability; re-hash if not.
        loop {
            if let Ok(s) = Self::from_secret(secret) {
                return s;
            }
            secret = alloy_primitives::keccak256(secret);
        }
    }

    /// The signer's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// A recoverable, low-s, RFC 6979 (deterministic) signature of a 32-byte hash, made with
    /// libsecp256k1 (about twice as fast as the pure-Rust backend).
    pub fn sign_hash(&self, hash: B256) -> Result<Signature, ExecutionError> {
        alloy_consensus::crypto::secp256k1::sign_message(self.secret, hash).map_err(|e| {
            ExecutionError::BadSignature {
                reason: e.to_string(),
            }
        })
    }

    /// Signs an EIP-1559 transaction and returns its raw EIP-2718 bytes.
    pub fn sign_eip1559(&self, tx: TxEip1559) -> Result<Bytes, ExecutionError> {
        let sig = self.sign_hash(tx.signature_hash())?;
        Ok(TxEnvelope::from(tx.into_signed(sig)).encoded_2718().into())
    }

    /// Signs a legacy transaction (set `chain_id` for EIP-155) and returns its raw bytes.
    pub fn sign_legacy(&self, tx: TxLegacy) -> Result<Bytes, ExecutionError> {
        let sig = self.sign_hash(tx.signature_hash())?;
        Ok(TxEnvelope::from(tx.into_signed(sig)).encoded_2718().into())
    }

    /// Convenience: a signed EIP-1559 call or transfer with Braid's default fees.
    pub fn call(
        &self,
        chain_id: ChainId,
        nonce: u64,
        to: Address,
        value: U256,
        input: Bytes,
        gas_limit: u64,
    ) -> Result<Bytes, ExecutionError> {
        self.sign_eip1559(TxEip1559 {
            chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: 100_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(to),
            value,
            access_list: Default::default(),
            input,
        })
    }
}
