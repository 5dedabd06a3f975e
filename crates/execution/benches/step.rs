//! The single-step verifier of optimistic settlement: `verify_step` of one transfer, one
//! `sendMessage` and one `executeMessage`, each from a witness against a state of 10 000
//! accounts and 1 000 outgoing messages (realistic proof depths). Prints each step's
//! `StepCost` (and its gas) before the timings.
//!
//! `cargo bench -p braid-execution --bench step`

use alloy_primitives::{keccak256, Address, Bytes, U256};
use alloy_sol_types::SolCall;
use braid_execution::{
    single_level_proof, step_witness, verify_step, BlockEnv, ChainState, ImportKey, MachineState,
    StateKey, StateValue, Step, StepItem, StepWitness, TxSigner, ValueTotals,
};
use braid_merkle::MessageTree;
use braid_primitives::{IMessenger, ImportKind, ImportedRoot, Message, MESSENGER_ADDRESS};

const A: u64 = 901;
const B: u64 = 902;
const ACCOUNTS: u64 = 10_000;
const OUTGOING: u64 = 1_000;
const SOURCE_MESSAGES: u64 = 1_000;

fn main() {
    for (name, case) in [
        ("transfer", transfer()),
        ("sendMessage", send_message()),
        ("executeMessage", execute_message()),
    ] {
        let (post, cost) = verify_step(&case.pre, &case.step, &case.witness).expect("verifies");
        assert!(matches!(post, MachineState::Running { .. }));
        println!(
            "{name:>15}: {} entries, keccak {} calls / {} bytes, ecrecover {}, witness {} bytes \
             -> gas {}",
            case.witness.entries.len(),
            cost.keccak_calls,
            cost.keccak_bytes,
            cost.ecrecovers,
            cost.witness_bytes,
            cost.gas()
        );
    }
    divan::main();
}

struct Case {
    pre: MachineState,
    step: Step,
    witness: StepWitness,
}

fn env() -> BlockEnv {
    BlockEnv {
        chain_id: B,
        number: 1,
        timestamp_ms: 1_000,
        sequencer: Address::repeat_byte(0x5e),
        base_fee: 1_000_000_000,
        gas_limit: 30_000_000,
    }
}

fn user() -> TxSigner {
    TxSigner::dev(0)
}

/// The source chain A's outgoing tree holding `message` at its nonce, among filler leaves.
fn source_tree(message: &Message) -> MessageTree {
    let leaves = (0..SOURCE_MESSAGES).map(|i| {
        if i == message.nonce {
            message.leaf_hash()
        } else {
            keccak256(i.to_be_bytes())
        }
    });
    MessageTree::from_leaves(leaves).expect("non-zero leaves")
}

fn the_message() -> Message {
    Message {
        sourceChain: A,
        nonce: 321,
        sender: Address::repeat_byte(0xaa),
        destChain: B,
        recipient: user().address(),
        value: U256::from(1_000u64),
        mode: ImportKind::Precommit as u8,
        payload: Bytes::from_static(b"hello from chain A"),
    }
}

/// Chain B: 10 000 funded accounts (the user among them), 1 000 earlier outgoing messages, and
/// the import of chain A's root.
fn chain_b() -> ChainState {
    let mut entries: Vec<(StateKey, StateValue)> = (0..ACCOUNTS)
        .map(|i| {
            let a = Address::from_word(keccak256(i.to_be_bytes()));
            (
                StateKey::Account(a),
                StateValue::Account(braid_execution::Account {
                    nonce: 0,
                    balance: U256::from(10u128.pow(18)),
                }),
            )
        })
        .collect();
    entries.push((
        StateKey::Account(user().address()),
        StateValue::Account(braid_execution::Account {
            nonce: 0,
            balance: U256::from(10u128.pow(20)),
        }),
    ));
    let tree = source_tree(&the_message());
    let import = ImportedRoot {
        kind: ImportKind::Precommit as u8,
        sourceChain: A,
        sourceHeight: 1,
        root: tree.root(),
        messageCount: tree.len(),
    };
    let key = ImportKey::of(&import).expect("valid import");
    entries.push((StateKey::Imported(key), StateValue::Imported(import)));
    entries.push((
        StateKey::Totals,
        StateValue::Totals(ValueTotals {
            genesis_supply: U256::from(10u128.pow(24)),
            ..ValueTotals::default()
        }),
    ));
    let outgoing = (0..OUTGOING).map(|i| keccak256((i + 1_000_000).to_be_bytes()));
    ChainState::restore(B, entries, outgoing).expect("restores")
}

fn case(raw: Bytes) -> Case {
    let mut state = chain_b();
    let pre = MachineState::Running {
        state_root: state.state_root(),
        block_gas_used: 0,
    };
    let step = Step {
        env: env(),
        first_in_block: true,
        item: StepItem::Transaction(raw),
    };
    let witness = step_witness(&state, &pre, &step);
    Case { pre, step, witness }
}

fn transfer() -> Case {
    let to = Address::from_word(keccak256(7u64.to_be_bytes()));
    case(
        user()
            .call(B, 0, to, U256::from(5u64), Bytes::new(), 21_000)
            .expect("sign"),
    )
}

fn send_message() -> Case {
    let input = IMessenger::sendMessageWithModeCall {
        destChain: U256::from(A),
        recipient: Address::repeat_byte(0x42),
        payload: Bytes::from_static(b"ping to chain A"),
        mode: ImportKind::Precommit as u8,
    }
    .abi_encode();
    case(
        user()
            .call(
                B,
                0,
                MESSENGER_ADDRESS,
                U256::from(5u64),
                input.into(),
                200_000,
            )
            .expect("sign"),
    )
}

fn execute_message() -> Case {
    let message = the_message();
    let tree = source_tree(&message);
    let inner = tree
        .inclusion_proof(message.nonce, tree.len())
        .expect("in range");
    let proof = single_level_proof(ImportKind::Precommit, tree.root(), inner);
    let input = IMessenger::executeMessageCall { message, proof }.abi_encode();
    case(
        user()
            .call(B, 0, MESSENGER_ADDRESS, U256::ZERO, input.into(), 500_000)
            .expect("sign"),
    )
}

fn bench_case(bencher: divan::Bencher, case: Case) {
    bencher.bench(|| {
        divan::black_box(verify_step(
            divan::black_box(&case.pre),
            &case.step,
            &case.witness,
        ))
    });
}

/// Stateless verification of a plain transfer (sender, recipient, sequencer, totals).
#[divan::bench]
fn verify_transfer(bencher: divan::Bencher) {
    bench_case(bencher, transfer());
}

/// Stateless verification of a `sendMessage` (plus the outgoing tree's root and frontier).
#[divan::bench]
fn verify_send_message(bencher: divan::Bencher) {
    bench_case(bencher, send_message());
}

/// Stateless verification of an `executeMessage` (plus the executed marker and the import).
#[divan::bench]
fn verify_execute_message(bencher: divan::Bencher) {
    bench_case(bencher, execute_message());
}

/// For scale: witness generation from the full state (what a challenger does once).
#[divan::bench]
fn witness_execute_message(bencher: divan::Bencher) {
    let c = execute_message();
    let state = chain_b();
    bencher.bench(|| divan::black_box(step_witness(&state, &c.pre, &c.step)));
}
