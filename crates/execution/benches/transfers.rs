//! Signed transfers per second on one core, against the raw ecrecover rate (the bound: every
//! transfer must recover its sender once).
//!
//! `cargo bench -p braid-execution --bench transfers`

use alloy_primitives::{Address, Bytes, B256, U256};
use braid_execution::{apply_transaction, BlockEnv, ChainState, RecoveredTx, TxSigner};

const CHAIN: u64 = 901;
const BLOCK_TXS: usize = 1_000;

fn main() {
    divan::main();
}

fn senders() -> Vec<TxSigner> {
    (0..BLOCK_TXS as u32).map(TxSigner::dev).collect()
}

fn block_of_transfers(signers: &[TxSigner]) -> Vec<Bytes> {
    signers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.call(
                CHAIN,
                0,
                Address::with_last_byte(i as u8),
                U256::from(1u64),
                Bytes::new(),
                21_000,
            )
            .expect("sign")
        })
        .collect()
}

fn env() -> BlockEnv {
    BlockEnv {
        chain_id: CHAIN,
        number: 1,
        timestamp_ms: 1_000,
        sequencer: Address::repeat_byte(0xfe),
        base_fee: 1_000_000_000,
        gas_limit: u64::MAX / 2,
    }
}

/// The bound: one secp256k1 public-key recovery plus the keccak of the key (the address), with
/// the same backend transaction decoding uses (libsecp256k1 through alloy-consensus).
#[divan::bench(items_count = BLOCK_TXS)]
fn raw_ecrecover(bencher: divan::Bencher) {
    let signers = senders();
    let txs: Vec<RecoveredTx> = block_of_transfers(&signers)
        .iter()
        .map(|r| RecoveredTx::decode(r).expect("valid"))
        .collect();
    let sigs: Vec<(alloy_primitives::Signature, B256)> = txs
        .iter()
        .map(|t| {
            use alloy_consensus::transaction::SignableTransaction;
            match &t.envelope {
                alloy_consensus::TxEnvelope::Eip1559(s) => {
                    (*s.signature(), s.tx().signature_hash())
                }
                _ => unreachable!("benchmark signs EIP-1559"),
            }
        })
        .collect();
    bencher.bench(|| {
        for (sig, hash) in &sigs {
            divan::black_box(
                alloy_consensus::crypto::secp256k1::recover_signer(sig, *hash).expect("recovers"),
            );
        }
    });
}

/// Decode + recover + validate + apply each transfer, then commit the block's state root.
#[divan::bench(items_count = BLOCK_TXS)]
fn signed_transfers_block(bencher: divan::Bencher) {
    let signers = senders();
    let alloc: Vec<(Address, U256)> = signers
        .iter()
        .map(|s| (s.address(), U256::from(10u128.pow(20))))
        .collect();
    let mut genesis = ChainState::genesis(CHAIN, &alloc);
    genesis.state_root();
    let raws = block_of_transfers(&signers);
    bencher
        .with_inputs(|| genesis.clone())
        .bench_local_values(|mut state| {
            let env = env();
            let mut gas = 0;
            for raw in &raws {
                let tx = RecoveredTx::decode(raw).expect("valid");
                gas = apply_transaction(&mut state, &env, &tx, gas)
                    .expect("applies")
                    .cumulative_gas_used;
            }
            divan::black_box(state.state_root());
            state
        });
}
