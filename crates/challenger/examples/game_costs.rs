//! The costs of a k-section game on the SL, for docs/benchmarks.md: for k = 2, 4, 16 and traces
//! of 10³ to 10⁶ steps, plays whole games (a trace that goes wrong at a random step against the
//! true one) through `braid_dispute::DisputeGame` with the SL's checks, and reports rounds, the
//! calldata and keccak work of the moves, a gas-like total with the single step (the costlier of
//! a transfer and a message send, measured with the real verifier), the SL's verification time,
//! and the game duration at a given SL block time when both sides answer at once.
//!
//! `cargo run --release -p braid-challenger --example game_costs`
#![allow(clippy::panic, clippy::unwrap_used)]

use std::time::Instant;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use braid_dispute::{boundaries, honest_choice, DisputeGame, GameConfig, Phase, Trace};
use braid_execution::{
    batch_steps, step_witness, verify_step, BlockEnv, ChainState, MachineState, Step, StepItem,
    TxSigner,
};
use braid_primitives::MESSENGER_ADDRESS;

const SL_BLOCK_MS: u64 = 2_000;
/// Gas of a keccak call over 64 bytes (30 + 6 per word), as the step cost model counts it.
const KECCAK64_GAS: u64 = 42;
/// Calldata gas per byte (non-zero bytes, the worst case).
const CALLDATA_GAS: u64 = 16;
/// Base cost of an SL transaction.
const TX_GAS: u64 = 21_000;

fn single_step_gas() -> Vec<(&'static str, u64, u64)> {
    let alice = TxSigner::dev(0);
    let chain = 901;
    // a state of 10 000 accounts, so the witness proofs have a realistic depth (~14)
    let mut alloc: Vec<(Address, U256)> = (0..10_000u32)
        .map(|i| {
            let a = Address::from_slice(&keccak256(i.to_be_bytes())[12..]);
            (a, U256::from(1u64))
        })
        .collect();
    alloc.push((alice.address(), U256::from(10u64).pow(U256::from(21u64))));
    let state = ChainState::genesis(chain, &alloc);
    let env = BlockEnv {
        chain_id: chain,
        number: 1,
        timestamp_ms: 1_000,
        sequencer: Address::repeat_byte(0xfe),
        base_fee: 1,
        gas_limit: 30_000_000,
    };
    let transfer = alice
        .call(
            chain,
            0,
            Address::repeat_byte(0xb0),
            U256::from(5u64),
            Bytes::new(),
            21_000,
        )
        .expect("sign");
    let send = braid_primitives::IMessenger::sendMessageCall {
        destChain: U256::from(902u64),
        recipient: Address::repeat_byte(0xc0),
        payload: Bytes::from_static(b"hello"),
    };
    let send = alice
        .call(
            chain,
            0,
            MESSENGER_ADDRESS,
            U256::from(5u64),
            alloy_sol_types::SolCall::abi_encode(&send).into(),
            200_000,
        )
        .expect("sign");
    let mut out = Vec::new();
    for (name, raw) in [("transfer", transfer), ("sendMessage", send)] {
        let step = Step {
            env,
            first_in_block: true,
            item: StepItem::Transaction(raw),
        };
        let mut s = state.clone();
        let pre = MachineState::Running {
            state_root: s.state_root(),
            block_gas_used: 0,
        };
        let witness = step_witness(&s, &pre, &step);
        let t = Instant::now();
        let (post, cost) = verify_step(&pre, &step, &witness).expect("a valid witness");
        let us = t.elapsed().as_micros() as u64;
        assert!(matches!(post, MachineState::Running { .. }));
        out.push((name, cost.gas(), us));
    }
    let _ = batch_steps(&[]);
    out
}

/// Plays one game; returns (rounds, calldata bytes, keccak calls, SL verify µs).
fn play(k: u64, n: u64, wrong_from: u64) -> (u32, u64, u64, u64) {
    let truth: Vec<B256> = (0..=n).map(|i| keccak256(i.to_be_bytes())).collect();
    let lie: Vec<B256> = truth
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if i as u64 >= wrong_from {
                keccak256(r)
            } else {
                *r
            }
        })
        .collect();
    let honest = Trace::new(truth).expect("trace");
    let liar = Trace::new(lie).expect("trace");
    let (pre, pre_proof) = liar.prove(0).expect("proof");
    let (end, end_proof) = liar.prove(n).expect("proof");
    let mut game = DisputeGame::open(
        GameConfig {
            k,
            clock_ms: u64::MAX / 4,
        },
        liar.commitment(),
        n,
        (pre, &pre_proof),
        (end, &end_proof),
        0,
    )
    .expect("open");
    let (mut bytes, mut keccaks, mut verify_us) = (0u64, 0u64, 0u64);
    let mut now = 0;
    loop {
        now += SL_BLOCK_MS;
        match game.phase().clone() {
            Phase::Split => {
                let (lo, hi) = game.range();
                let roots: Vec<_> = boundaries(lo, hi, k)
                    .into_iter()
                    .map(|p| liar.prove(p).expect("proof"))
                    .collect();
                for (_, p) in &roots {
                    bytes += 32 + 32 * p.siblings.len() as u64 + 16;
                    // leaf hash + one per level up to the root + the size mix-in
                    keccaks += 2 + 32;
                }
                let t = Instant::now();
                game.split(now, &roots).expect("split");
                verify_us += t.elapsed().as_micros() as u64;
            }
            Phase::Choose(points) => {
                let hi = game.range().1;
                let part = honest_choice(&points, hi, &honest).expect("a part");
                bytes += 4;
                game.choose(now, part).expect("choose");
            }
            Phase::SingleStep { step, .. } => {
                assert_eq!(step, wrong_from.max(1), "narrowed to the first wrong step");
                return (game.rounds(), bytes, keccaks, verify_us);
            }
            Phase::Over(o) => panic!("game over early: {o:?}"),
        }
    }
}

fn main() {
    println!("single step (real verifier, one transaction on a 10 000-account state):");
    let steps = single_step_gas();
    for (name, gas, us) in &steps {
        println!("  {name}: {gas} gas-like, verified in {us} µs");
    }
    let step_gas = steps.iter().map(|s| s.1).max().unwrap_or(0);
    println!();
    println!(
        "| k | steps n | rounds | moves | calldata (bytes) | keccaks | gas-like total | SL verify (ms) | duration at {} s SL blocks |",
        SL_BLOCK_MS / 1_000
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for k in [2u64, 4, 16] {
        for exp in 3..=6u32 {
            let n = 10u64.pow(exp);
            let wrong = n / 3 + 1;
            let (rounds, bytes, keccaks, us) = play(k, n, wrong);
            let moves = 2 * u64::from(rounds) + 1;
            let gas = moves * TX_GAS + bytes * CALLDATA_GAS + keccaks * KECCAK64_GAS + step_gas;
            let duration_s = moves * SL_BLOCK_MS / 1_000;
            println!(
                "| {k} | 10^{exp} | {rounds} | {moves} | {bytes} | {keccaks} | {gas} | {:.2} | {duration_s} s |",
                us as f64 / 1_000.0
            );
        }
    }
}
