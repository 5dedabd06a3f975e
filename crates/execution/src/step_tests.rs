use super::*;
use crate::{execute_block, seal_header, single_level_proof, Account, TxSigner, ValueTotals};
use alloy_primitives::{Address, U256};
use braid_primitives::{ChainId, Message, SETTLEMENT_LAYER_CHAIN_ID};
use proptest::prelude::*;

const A: ChainId = 901;
const B: ChainId = 902;
const ETH: u128 = 1_000_000_000_000_000_000;
const BLOCK_GAS: u64 = 3_000_000;

fn signer(i: usize) -> TxSigner {
    TxSigner::dev(i as u32)
}

/// Funded senders on chain B: dev 0, 1, 3 (dev 2 has nothing).
const FUNDED: [usize; 3] = [0, 1, 3];

fn sequencer() -> Address {
    Address::repeat_byte(0x5e)
}

fn recipients() -> Vec<Address> {
    vec![
        signer(0).address(),
        signer(1).address(),
        signer(2).address(),
        Address::repeat_byte(0x77),
        Address::repeat_byte(0x78),
        sequencer(),
    ]
}

fn genesis_b() -> ChainState {
    ChainState::genesis(
        B,
        &[
            (signer(0).address(), U256::from(100 * ETH)),
            (signer(1).address(), U256::from(ETH)),
            (signer(3).address(), U256::from(ETH)),
        ],
    )
}

fn env(number: u64) -> BlockEnv {
    BlockEnv {
        chain_id: B,
        number,
        timestamp_ms: number * 1000,
        sequencer: sequencer(),
        base_fee: 1_000_000_000,
        gas_limit: BLOCK_GAS,
    }
}

fn send_input(dest: ChainId, recipient: Address, payload: &[u8]) -> Bytes {
    IMessenger::sendMessageWithModeCall {
        destChain: alloy_primitives::U256::from(dest),
        recipient,
        payload: Bytes::copy_from_slice(payload),
        mode: ImportKind::Precommit as u8,
    }
    .abi_encode()
    .into()
}

/// Chain A with `n` messages to chain B (precommit mode), and the import of its root.
fn source_chain(n: usize) -> (ChainState, Vec<Message>, ImportedRoot) {
    let mut a = ChainState::genesis(A, &[(signer(0).address(), U256::from(100 * ETH))]);
    let mut messages = Vec::new();
    let mut gas = 0;
    for i in 0..n {
        let recipient = recipients()[i % recipients().len()];
        let payload = vec![i as u8; i * 7 % 50];
        let value = U256::from((i as u64 % 3) * 1_000);
        let raw = signer(0)
            .call(
                A,
                i as u64,
                MESSENGER_ADDRESS,
                value,
                send_input(B, recipient, &payload),
                200_000,
            )
            .unwrap();
        let tx = RecoveredTx::decode(&raw).unwrap();
        gas = apply_transaction(&mut a, &env_a(), &tx, gas)
            .unwrap()
            .cumulative_gas_used;
        messages.push(Message {
            sourceChain: A,
            nonce: i as u64,
            sender: signer(0).address(),
            destChain: B,
            recipient,
            value,
            mode: ImportKind::Precommit as u8,
            payload: payload.into(),
        });
    }
    let import = ImportedRoot {
        kind: ImportKind::Precommit as u8,
        sourceChain: A,
        sourceHeight: 1,
        root: a.outbox().root(),
        messageCount: a.outbox().len(),
    };
    (a, messages, import)
}

fn env_a() -> BlockEnv {
    BlockEnv {
        chain_id: A,
        gas_limit: 30_000_000,
        ..env(1)
    }
}

fn execute_input(a: &ChainState, message: &Message) -> Bytes {
    let inner = a
        .outbox()
        .inclusion_proof(message.nonce, a.outbox().len())
        .unwrap();
    let proof = single_level_proof(ImportKind::Precommit, a.outbox().root(), inner);
    IMessenger::executeMessageCall {
        message: message.clone(),
        proof,
    }
    .abi_encode()
    .into()
}

/// What a generated batch does.
#[derive(Clone, Debug)]
enum Op {
    Transfer {
        from: usize,
        to: usize,
        value: u64,
    },
    Send {
        from: usize,
        value: u64,
        payload: usize,
    },
    Execute {
        from: usize,
        message: usize,
    },
    Deposit {
        to: usize,
        amount: u64,
    },
    /// 0: nonce gap, 1: garbage bytes, 2: deposit out of order, 3: value above balance,
    /// 4: a replayed import with other metadata.
    Invalid {
        kind: u8,
    },
    EndBlock,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..6usize, 0..3u64).prop_map(|(from, to, value)| Op::Transfer { from, to, value }),
        2 => (0..3usize, 0..3u64, 0..80usize).prop_map(|(from, value, payload)| Op::Send { from, value, payload }),
        2 => (0..3usize, 0..6usize).prop_map(|(from, message)| Op::Execute { from, message }),
        1 => (0..6usize, 0..3u64).prop_map(|(to, amount)| Op::Deposit { to, amount }),
        1 => (0..5u8).prop_map(|kind| Op::Invalid { kind }),
        2 => Just(Op::EndBlock),
    ]
}

const SOURCE_MESSAGES: usize = 6;

/// Builds blocks on chain B from `ops` with correct headers (items that fail are still included,
/// making that block invalid). The first block imports chain A's root.
fn build_batch(
    ops: &[Op],
    a: &ChainState,
    messages: &[Message],
    import: &ImportedRoot,
) -> Vec<Block> {
    let mut builder = genesis_b();
    let mut nonces = [0u64; 4];
    let mut deposit_index = 0u64;
    let mut blocks = Vec::new();
    let mut contents = (vec![import.clone()], Vec::new(), Vec::new());
    let mut number = 1;
    let seal = |builder: &mut ChainState,
                contents: &mut (
        Vec<ImportedRoot>,
        Vec<braid_primitives::Deposit>,
        Vec<Bytes>,
    ),
                number: &mut u64| {
        let (imports, deposits, txs) = std::mem::take(contents);
        let e = env(*number);
        for i in &imports {
            let _ = apply_import(builder, i);
        }
        for d in &deposits {
            let _ = apply_deposit(builder, d);
        }
        let mut gas = 0;
        let mut hashes = Vec::new();
        for raw in &txs {
            if let Ok(tx) = RecoveredTx::decode(raw) {
                hashes.push(tx.hash);
                if let Ok(r) = apply_transaction(builder, &e, &tx, gas) {
                    gas = r.cumulative_gas_used;
                }
            }
        }
        let header = seal_header(builder, &e, B256::ZERO, &imports, &deposits, &hashes, gas);
        *number += 1;
        Block {
            header,
            imports,
            deposits,
            transactions: txs,
        }
    };
    for op in ops {
        match op {
            Op::Transfer { from, to, value } => {
                let i = FUNDED[*from];
                let raw = signer(i)
                    .call(
                        B,
                        nonces[i],
                        recipients()[*to],
                        U256::from(*value),
                        Bytes::new(),
                        21_000,
                    )
                    .unwrap();
                nonces[i] += 1;
                contents.2.push(raw);
            }
            Op::Send {
                from,
                value,
                payload,
            } => {
                let i = FUNDED[*from];
                let raw = signer(i)
                    .call(
                        B,
                        nonces[i],
                        MESSENGER_ADDRESS,
                        U256::from(*value),
                        send_input(A, recipients()[*payload % 6], &vec![7u8; *payload]),
                        200_000,
                    )
                    .unwrap();
                nonces[i] += 1;
                contents.2.push(raw);
            }
            Op::Execute { from, message } => {
                let i = FUNDED[*from];
                let raw = signer(i)
                    .call(
                        B,
                        nonces[i],
                        MESSENGER_ADDRESS,
                        U256::ZERO,
                        execute_input(a, &messages[*message % messages.len()]),
                        500_000,
                    )
                    .unwrap();
                nonces[i] += 1;
                contents.2.push(raw);
            }
            Op::Deposit { to, amount } => {
                contents.1.push(braid_primitives::Deposit {
                    index: deposit_index,
                    chainId: B,
                    sender: Address::repeat_byte(0x51),
                    recipient: recipients()[*to],
                    amount: U256::from(*amount * 1_000),
                    queuedAtMs: 0,
                });
                deposit_index += 1;
            }
            Op::Invalid { kind } => match kind {
                0 => contents.2.push(
                    signer(0)
                        .call(
                            B,
                            nonces[0] + 5,
                            Address::repeat_byte(1),
                            U256::ZERO,
                            Bytes::new(),
                            21_000,
                        )
                        .unwrap(),
                ),
                1 => contents.2.push(Bytes::from_static(&[0x02, 0xff, 0x00])),
                2 => contents.1.push(braid_primitives::Deposit {
                    index: deposit_index + 3,
                    chainId: B,
                    sender: Address::repeat_byte(0x51),
                    recipient: Address::repeat_byte(0x52),
                    amount: U256::from(1u64),
                    queuedAtMs: 0,
                }),
                3 => {
                    let raw = signer(1)
                        .call(
                            B,
                            nonces[1],
                            Address::repeat_byte(1),
                            U256::from(50 * ETH),
                            Bytes::new(),
                            21_000,
                        )
                        .unwrap();
                    nonces[1] += 1;
                    contents.2.push(raw);
                }
                _ => contents.0.push(ImportedRoot {
                    sourceHeight: 99,
                    ..import.clone()
                }),
            },
            // (possibly empty: an empty block gives no steps)
            Op::EndBlock => blocks.push(seal(&mut builder, &mut contents, &mut number)),
        }
    }
    blocks.push(seal(&mut builder, &mut contents, &mut number));
    blocks
}

/// Full-state states before each step (`states[i]` is the state before step `i`).
fn states_before(start: &ChainState, steps: &[Step], trace: &[MachineState]) -> Vec<ChainState> {
    let mut state = start.clone();
    let mut states = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        states.push(state.clone());
        let m = run_step(&mut state, &trace[i], step);
        assert_eq!(m, trace[i + 1]);
    }
    states
}

/// Every check on one step: verification reproduces the trace; omitting any item or tampering
/// any value or proof fails; a wrong pre-state fails.
fn check_step(
    pre_state: &ChainState,
    pre: &MachineState,
    post: &MachineState,
    step: &Step,
    thorough: bool,
) {
    let witness = step_witness(pre_state, pre, step);
    let (got, cost) = verify_step(pre, step, &witness).expect("honest witness verifies");
    assert_eq!(&got, post, "stateless result differs from full execution");
    assert_eq!(got.commitment(), post.commitment());
    assert_eq!(cost.witness_bytes, witness.encoded_len());
    let MachineState::Running {
        state_root,
        block_gas_used,
    } = *pre
    else {
        assert_eq!(got, MachineState::Invalid);
        return;
    };
    if let StepItem::Transaction(_) = step.item {
        assert_eq!(cost.ecrecovers, 1);
    }
    // serde round trips keep the witness, and what comes back still verifies
    let (from_json, from_postcard) = serde_round_trips(&witness);
    assert_eq!(from_json, witness);
    assert_eq!(from_postcard, witness);
    assert_eq!(verify_step(pre, step, &from_json), Ok((got, cost)));

    // Omitting any single item fails.
    for j in 0..witness.entries.len() {
        let mut w = witness.clone();
        let removed = w.entries.remove(j);
        let err = verify_step(pre, step, &w).expect_err("omitted entry accepted");
        let expected_missing = StepError::MissingWitness {
            item: WitnessItem::State(removed.key),
        };
        let frontier_orphan = removed.key == StateKey::Outbox && w.outbox_frontier.is_some();
        assert!(
            err == expected_missing || (frontier_orphan && err == StepError::FrontierWithoutOutbox),
            "omitting {:?} gave {err:?}",
            removed.key
        );
    }
    if witness.outbox_frontier.is_some() {
        let mut w = witness.clone();
        w.outbox_frontier = None;
        assert_eq!(
            verify_step(pre, step, &w),
            Err(StepError::MissingWitness {
                item: WitnessItem::OutboxFrontier
            })
        );
    }
    // A wrong pre-state root fails (if the step touches state at all).
    let wrong = MachineState::Running {
        state_root: keccak256(state_root),
        block_gas_used,
    };
    if !witness.entries.is_empty() {
        assert!(matches!(
            verify_step(&wrong, step, &witness),
            Err(StepError::BadProof { .. })
        ));
    }
    if let MachineState::Running {
        state_root: post_root,
        ..
    } = post
    {
        if *post_root != state_root && !witness.entries.is_empty() {
            let shifted = MachineState::Running {
                state_root: *post_root,
                block_gas_used,
            };
            assert!(verify_step(&shifted, step, &witness).is_err());
        }
    }
    if !thorough {
        return;
    }
    // Tampering any value or proof fails.
    for j in 0..witness.entries.len() {
        for tampered in tamperings(&witness.entries[j]) {
            let mut w = witness.clone();
            w.entries[j] = tampered;
            let result = verify_step(pre, step, &w);
            assert!(
                matches!(
                    result,
                    Err(StepError::BadProof { .. }) | Err(StepError::ValueKindMismatch { .. })
                ),
                "tampered entry {:?} gave {result:?}",
                witness.entries[j].key
            );
        }
    }
    if let Some(f) = &witness.outbox_frontier {
        for i in 0..f.left_siblings.len() {
            let mut w = witness.clone();
            if let Some(t) = w.outbox_frontier.as_mut() {
                t.left_siblings[i] = keccak256(t.left_siblings[i]);
            }
            assert!(matches!(
                verify_step(pre, step, &w),
                Err(StepError::BadFrontier(_))
            ));
        }
        let mut w = witness.clone();
        if let Some(t) = w.outbox_frontier.as_mut() {
            t.size += 1;
        }
        assert!(matches!(
            verify_step(pre, step, &w),
            Err(StepError::BadFrontier(_))
        ));
    }
}

/// The witness serialised and deserialised again, through JSON (the format of reports and
/// RPC) and postcard (the binary encoding of stored and gossiped values).
fn serde_round_trips(w: &StepWitness) -> (StepWitness, StepWitness) {
    let json = serde_json::to_string(w).expect("a witness serialises to JSON");
    let from_json: StepWitness = serde_json::from_str(&json).expect("and deserialises");
    let bytes = postcard::to_allocvec(w).expect("a witness serialises with postcard");
    let from_postcard: StepWitness = postcard::from_bytes(&bytes).expect("and deserialises");
    (from_json, from_postcard)
}

/// Variants of an entry that must not verify.
fn tamperings(e: &WitnessEntry) -> Vec<WitnessEntry> {
    let mut out = Vec::new();
    let with_value = |v: Option<StateValue>| WitnessEntry {
        value: v,
        ..e.clone()
    };
    match &e.value {
        Some(StateValue::Account(a)) => {
            out.push(with_value(Some(StateValue::Account(Account {
                balance: a.balance + U256::from(1u64),
                ..*a
            }))));
            out.push(with_value(Some(StateValue::Account(Account {
                nonce: a.nonce + 1,
                ..*a
            }))));
        }
        Some(StateValue::Totals(t)) => {
            out.push(with_value(Some(StateValue::Totals(ValueTotals {
                deposited_in: t.deposited_in + U256::from(1u64),
                ..*t
            }))));
            out.push(with_value(Some(StateValue::Totals(ValueTotals {
                deposit_count: t.deposit_count + 1,
                ..*t
            }))));
            out.push(with_value(Some(StateValue::Totals(ValueTotals {
                burned_fees: t.burned_fees + U256::from(1u64),
                ..*t
            }))));
        }
        Some(StateValue::Outbox { root, count }) => {
            out.push(with_value(Some(StateValue::Outbox {
                root: *root,
                count: count + 1,
            })));
            out.push(with_value(Some(StateValue::Outbox {
                root: keccak256(root),
                count: *count,
            })));
        }
        Some(StateValue::Executed(leaf)) => {
            out.push(with_value(Some(StateValue::Executed(keccak256(leaf)))))
        }
        Some(StateValue::Imported(r)) => {
            out.push(with_value(Some(StateValue::Imported(ImportedRoot {
                messageCount: r.messageCount + 1,
                ..r.clone()
            }))));
        }
        None => {}
    }
    // present <-> absent
    match &e.value {
        Some(_) => out.push(with_value(None)),
        None => {
            let fake = match e.key {
                StateKey::Account(_) => StateValue::Account(Account {
                    nonce: 0,
                    balance: U256::from(1u64),
                }),
                StateKey::Executed(_) => StateValue::Executed(B256::repeat_byte(3)),
                StateKey::Totals => StateValue::Totals(ValueTotals::default()),
                StateKey::Outbox => StateValue::Outbox {
                    root: empty_root(),
                    count: 0,
                },
                StateKey::Imported(k) => StateValue::Imported(ImportedRoot {
                    kind: k.kind as u8,
                    sourceChain: k.source_chain,
                    sourceHeight: 1,
                    root: k.root,
                    messageCount: 1,
                }),
            };
            out.push(with_value(Some(fake)));
        }
    }
    // every sibling, the proof leaf, the proof length
    for i in 0..e.proof.siblings.len() {
        let mut t = e.clone();
        t.proof.siblings[i] = keccak256(t.proof.siblings[i]);
        out.push(t);
    }
    let mut t = e.clone();
    t.proof.siblings.push(B256::ZERO);
    out.push(t);
    if !e.proof.siblings.is_empty() {
        let mut t = e.clone();
        t.proof.siblings.pop();
        out.push(t);
    }
    if let Some((k, v)) = e.proof.leaf {
        let mut t = e.clone();
        t.proof.leaf = Some((k, keccak256(v)));
        out.push(t);
        let mut t = e.clone();
        t.proof.leaf = Some((keccak256(k), v));
        out.push(t);
    }
    out
}

/// How many steps of each kind were verified from a `Running` pre-state.
#[derive(Debug, Default)]
struct Coverage {
    imports: usize,
    deposits: usize,
    transfers: usize,
    sends: usize,
    executes: usize,
    became_invalid: usize,
}

fn run_batch_checks(ops: &[Op], thorough: bool) -> Coverage {
    let (a, messages, import) = source_chain(SOURCE_MESSAGES);
    let blocks = build_batch(ops, &a, &messages, &import);
    let steps = batch_steps(&blocks);
    let start = genesis_b();
    let (trace, mut end) = trace_batch(&start, &steps);
    assert_eq!(trace.len(), steps.len() + 1);
    // The trace agrees with block execution.
    let mut replica = start.clone();
    let all_valid = blocks
        .iter()
        .all(|b| execute_block(&mut replica, B256::ZERO, b).is_ok());
    match trace.last() {
        Some(MachineState::Running { state_root, .. }) => {
            assert!(all_valid, "trace valid but a block is invalid");
            assert_eq!(*state_root, replica.state_root());
            assert_eq!(*state_root, end.state_root());
        }
        _ => assert!(!all_valid, "trace invalid but every block executes"),
    }
    let states = states_before(&start, &steps, &trace);
    let mut cov = Coverage::default();
    for (i, step) in steps.iter().enumerate() {
        check_step(&states[i], &trace[i], &trace[i + 1], step, thorough);
        if trace[i] == MachineState::Invalid {
            continue;
        }
        if trace[i + 1] == MachineState::Invalid {
            cov.became_invalid += 1;
            continue;
        }
        let w = step_witness(&states[i], &trace[i], step);
        let items = items_of(&w);
        match step.item {
            StepItem::Import(_) => cov.imports += 1,
            StepItem::Deposit(_) => cov.deposits += 1,
            StepItem::Transaction(_) if items.contains(&WitnessItem::OutboxFrontier) => {
                cov.sends += 1
            }
            StepItem::Transaction(_)
                if items
                    .iter()
                    .any(|i| matches!(i, WitnessItem::State(StateKey::Executed(_)))) =>
            {
                cov.executes += 1
            }
            StepItem::Transaction(_) => cov.transfers += 1,
        }
    }
    cov
}

/// Deterministic random batches (a small LCG) that must exercise every kind of step.
#[test]
fn seeded_batches_cover_every_kind_of_step() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % n
    };
    let mut total = Coverage::default();
    for _ in 0..8 {
        let len = 8 + next(16) as usize;
        let ops: Vec<Op> = (0..len)
            .map(|_| match next(12) {
                0..=3 => Op::Transfer {
                    from: next(3) as usize,
                    to: next(6) as usize,
                    value: next(3),
                },
                4 | 5 => Op::Send {
                    from: next(3) as usize,
                    value: next(3),
                    payload: next(80) as usize,
                },
                6 | 7 => Op::Execute {
                    from: next(3) as usize,
                    message: next(6) as usize,
                },
                8 => Op::Deposit {
                    to: next(6) as usize,
                    amount: next(3),
                },
                9 if next(3) == 0 => Op::Invalid {
                    kind: next(5) as u8,
                },
                _ => Op::EndBlock,
            })
            .collect();
        let c = run_batch_checks(&ops, true);
        total.imports += c.imports;
        total.deposits += c.deposits;
        total.transfers += c.transfers;
        total.sends += c.sends;
        total.executes += c.executes;
        total.became_invalid += c.became_invalid;
    }
    assert!(total.imports >= 4, "{total:?}");
    assert!(total.deposits >= 4, "{total:?}");
    assert!(total.transfers >= 10, "{total:?}");
    assert!(total.sends >= 5, "{total:?}");
    assert!(total.executes >= 5, "{total:?}");
    assert!(total.became_invalid >= 1, "{total:?}");
    eprintln!("coverage: {total:?}");
}

// ---------------------------------------------------------------------------------------------
// Deterministic tests
// ---------------------------------------------------------------------------------------------

#[test]
fn commitments_are_the_documented_hashes() {
    let root = B256::repeat_byte(9);
    let m = MachineState::Running {
        state_root: root,
        block_gas_used: 21_000,
    };
    let mut enc = [0u8; 64];
    enc[..32].copy_from_slice(root.as_slice());
    enc[56..].copy_from_slice(&21_000u64.to_be_bytes());
    assert_eq!(m.commitment(), keccak256(enc));
    assert_eq!(
        MachineState::Invalid.commitment(),
        keccak256(b"braid.optimistic.invalid-batch")
    );
    assert_ne!(
        m.commitment(),
        MachineState::Running {
            state_root: root,
            block_gas_used: 0
        }
        .commitment()
    );
}

#[test]
fn batch_steps_follow_execute_block_order() {
    let (a, messages, import) = source_chain(2);
    let ops = [
        Op::Transfer {
            from: 0,
            to: 1,
            value: 1,
        },
        Op::Deposit { to: 2, amount: 1 },
        Op::EndBlock,
        Op::EndBlock,
        Op::Execute {
            from: 1,
            message: 0,
        },
    ];
    let blocks = build_batch(&ops, &a, &messages, &import);
    assert_eq!(
        blocks.len(),
        3,
        "two sealed by EndBlock (one empty) and the last"
    );
    let steps = batch_steps(&blocks);
    let kinds: Vec<(u64, bool, &str)> = steps
        .iter()
        .map(|s| {
            let kind = match s.item {
                StepItem::Import(_) => "import",
                StepItem::Deposit(_) => "deposit",
                StepItem::Transaction(_) => "tx",
            };
            (s.env.number, s.first_in_block, kind)
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1, true, "import"),
            (1, false, "deposit"),
            (1, false, "tx"),
            (3, true, "tx")
        ]
    );
    assert_eq!(steps[0].env, BlockEnv::from_header(&blocks[0].header));
}

#[test]
fn gas_resets_at_each_block_and_accumulates_within_one() {
    let (a, messages, import) = source_chain(1);
    let ops = [
        Op::Transfer {
            from: 0,
            to: 1,
            value: 1,
        },
        Op::Transfer {
            from: 0,
            to: 1,
            value: 1,
        },
        Op::EndBlock,
        Op::Transfer {
            from: 0,
            to: 1,
            value: 1,
        },
    ];
    let steps = batch_steps(&build_batch(&ops, &a, &messages, &import));
    let (trace, _) = trace_batch(&genesis_b(), &steps);
    let gas: Vec<u64> = trace
        .iter()
        .map(|m| match m {
            MachineState::Running { block_gas_used, .. } => *block_gas_used,
            MachineState::Invalid => u64::MAX,
        })
        .collect();
    assert_eq!(gas, vec![0, 0, 21_000, 42_000, 21_000]);
}

fn items_of(w: &StepWitness) -> BTreeSet<WitnessItem> {
    w.items().into_iter().collect()
}

#[test]
fn witnesses_hold_exactly_the_touched_items() {
    let (a, messages, import) = source_chain(3);
    let alice = signer(0).address();
    let bob = signer(1).address();
    let ops = [
        Op::Transfer {
            from: 0,
            to: 1,
            value: 2,
        },
        Op::Send {
            from: 0,
            value: 1,
            payload: 10,
        },
        Op::Execute {
            from: 1,
            message: 1,
        },
        Op::Deposit { to: 4, amount: 1 },
    ];
    let steps = batch_steps(&build_batch(&ops, &a, &messages, &import));
    let (trace, _) = trace_batch(&genesis_b(), &steps);
    let states = states_before(&genesis_b(), &steps, &trace);
    let w: Vec<StepWitness> = (0..steps.len())
        .map(|i| step_witness(&states[i], &trace[i], &steps[i]))
        .collect();
    use StateKey::*;
    use WitnessItem::*;
    // steps: import, deposit, transfer, send, execute
    let key = ImportKey::of(&import).unwrap();
    assert_eq!(items_of(&w[0]), [State(Imported(key))].into());
    assert_eq!(
        items_of(&w[1]),
        [State(Account(Address::repeat_byte(0x78))), State(Totals)].into()
    );
    assert_eq!(
        items_of(&w[2]),
        [
            State(Account(alice)),
            State(Account(bob)),
            State(Account(sequencer())),
            State(Totals)
        ]
        .into()
    );
    assert_eq!(
        items_of(&w[3]),
        [
            State(Account(alice)),
            State(Account(sequencer())),
            State(Totals),
            State(Outbox),
            OutboxFrontier
        ]
        .into()
    );
    let m = &messages[1];
    assert_eq!(
        items_of(&w[4]),
        [
            State(Account(bob)),
            State(Account(m.recipient)),
            State(Account(sequencer())),
            State(Totals),
            State(Executed(m.id())),
            State(Imported(key)),
        ]
        .into()
    );
    for (i, step) in steps.iter().enumerate() {
        check_step(&states[i], &trace[i], &trace[i + 1], step, true);
    }
}

#[test]
fn invalid_propagates_without_a_witness() {
    let (a, messages, import) = source_chain(1);
    let ops = [
        Op::Invalid { kind: 1 },
        Op::Transfer {
            from: 0,
            to: 1,
            value: 1,
        },
    ];
    let steps = batch_steps(&build_batch(&ops, &a, &messages, &import));
    let (trace, _) = trace_batch(&genesis_b(), &steps);
    assert!(
        matches!(trace[1], MachineState::Running { .. }),
        "the import applies"
    );
    assert_eq!(
        trace[2],
        MachineState::Invalid,
        "garbage bytes invalidate the batch"
    );
    assert_eq!(trace[3], MachineState::Invalid, "and it stays invalid");
    let states = states_before(&genesis_b(), &steps, &trace);
    // A failed decode touches nothing: the witness is empty and the result Invalid.
    let w = step_witness(&states[1], &trace[1], &steps[1]);
    assert_eq!(w, StepWitness::default());
    assert_eq!(
        verify_step(&trace[1], &steps[1], &w).map(|r| r.0),
        Ok(MachineState::Invalid)
    );
    // From Invalid, anything goes, even a witness of garbage.
    let junk = step_witness(&states[0], &trace[0], &steps[0]);
    let (m, cost) = verify_step(&MachineState::Invalid, &steps[2], &junk).unwrap();
    assert_eq!(m, MachineState::Invalid);
    assert_eq!(cost, StepCost::default());
    assert_eq!(
        step_witness(&states[2], &MachineState::Invalid, &steps[2]),
        StepWitness::default()
    );
    let mut s = states[2].clone();
    let root = s.state_root();
    assert_eq!(
        run_step(&mut s, &MachineState::Invalid, &steps[2]),
        MachineState::Invalid
    );
    assert_eq!(
        s.state_root(),
        root,
        "an invalid machine does not touch the state"
    );
}

#[test]
fn an_invalid_transaction_is_ok_invalid_not_an_error() {
    let (a, messages, import) = source_chain(1);
    // nonce gap: reads the sender only
    let ops = [Op::Invalid { kind: 0 }];
    let steps = batch_steps(&build_batch(&ops, &a, &messages, &import));
    let (trace, _) = trace_batch(&genesis_b(), &steps);
    let states = states_before(&genesis_b(), &steps, &trace);
    let w = step_witness(&states[1], &trace[1], &steps[1]);
    assert_eq!(
        items_of(&w),
        [WitnessItem::State(StateKey::Account(signer(0).address()))].into()
    );
    let (m, cost) = verify_step(&trace[1], &steps[1], &w).unwrap();
    assert_eq!(m, MachineState::Invalid);
    assert_eq!(cost.ecrecovers, 1);
    // Without the sender's entry the verifier cannot decide: an error, not Invalid.
    assert_eq!(
        verify_step(&trace[1], &steps[1], &StepWitness::default()),
        Err(StepError::MissingWitness {
            item: WitnessItem::State(StateKey::Account(signer(0).address()))
        })
    );
}

#[test]
fn malformed_witnesses_are_refused() {
    let (a, messages, import) = source_chain(1);
    let ops = [Op::Transfer {
        from: 0,
        to: 1,
        value: 2,
    }];
    let steps = batch_steps(&build_batch(&ops, &a, &messages, &import));
    let (trace, _) = trace_batch(&genesis_b(), &steps);
    let states = states_before(&genesis_b(), &steps, &trace);
    let w = step_witness(&states[1], &trace[1], &steps[1]);
    assert!(w.entries.len() >= 3);
    // duplicated and unsorted entries
    let mut dup = w.clone();
    dup.entries.insert(1, dup.entries[0].clone());
    assert!(matches!(
        verify_step(&trace[1], &steps[1], &dup),
        Err(StepError::UnsortedEntries { .. })
    ));
    let mut rev = w.clone();
    rev.entries.reverse();
    assert!(matches!(
        verify_step(&trace[1], &steps[1], &rev),
        Err(StepError::UnsortedEntries { .. })
    ));
    // a value of another kind
    let mut kind = w.clone();
    kind.entries[0].value = Some(StateValue::Executed(B256::repeat_byte(1)));
    assert!(matches!(
        verify_step(&trace[1], &steps[1], &kind),
        Err(StepError::ValueKindMismatch { .. })
    ));
    // a frontier without an outbox entry
    let mut orphan = w.clone();
    orphan.outbox_frontier = Some(AppendWitness::empty());
    assert_eq!(
        verify_step(&trace[1], &steps[1], &orphan),
        Err(StepError::FrontierWithoutOutbox)
    );
    // an extra (proven) entry is harmless and only costs calldata
    let mut extra = w.clone();
    let mut pre = states[1].clone();
    let (_, value, proof) = pre.prove(&StateKey::Outbox);
    extra.entries.push(WitnessEntry {
        key: StateKey::Outbox,
        value,
        proof,
    });
    extra.entries.sort_by_key(|e| e.key);
    let (m, cost) = verify_step(&trace[1], &steps[1], &extra).unwrap();
    assert_eq!(m, trace[2]);
    assert!(cost.witness_bytes > w.encoded_len());
}

#[test]
fn a_step_for_another_chain_is_invalid_in_full_execution() {
    let (a, messages, import) = source_chain(1);
    let ops = [Op::Deposit { to: 1, amount: 1 }];
    let mut steps = batch_steps(&build_batch(&ops, &a, &messages, &import));
    steps[1].env.chain_id = A;
    let (trace, _) = trace_batch(&genesis_b(), &steps);
    assert_eq!(trace[2], MachineState::Invalid);
}

#[test]
fn two_level_proof_mode_messages_verify_statelessly() {
    // A message proven against an SL MessageRoot (two-level proof, `proof` import kind).
    let (a, messages, _) = source_chain(3);
    let m = &messages[2];
    let chain_batch_root = a.outbox().root();
    let batch_leaf = braid_primitives::message_root_leaf(A, 7, chain_batch_root, a.outbox().len());
    let sl_tree =
        braid_merkle::MessageTree::from_leaves([keccak256(b"other"), batch_leaf]).unwrap();
    let import = ImportedRoot {
        kind: ImportKind::Proof as u8,
        sourceChain: SETTLEMENT_LAYER_CHAIN_ID,
        sourceHeight: 1,
        root: sl_tree.root(),
        messageCount: sl_tree.len(),
    };
    let inner = a
        .outbox()
        .inclusion_proof(m.nonce, a.outbox().len())
        .unwrap();
    let outer = sl_tree.inclusion_proof(1, 2).unwrap();
    let proof = crate::two_level_proof(sl_tree.root(), 7, chain_batch_root, inner, outer);
    let raw = signer(1)
        .call(
            B,
            0,
            MESSENGER_ADDRESS,
            U256::ZERO,
            IMessenger::executeMessageCall {
                message: m.clone(),
                proof,
            }
            .abi_encode()
            .into(),
            500_000,
        )
        .unwrap();
    let steps = vec![
        Step {
            env: env(1),
            first_in_block: true,
            item: StepItem::Import(import),
        },
        Step {
            env: env(1),
            first_in_block: false,
            item: StepItem::Transaction(raw),
        },
    ];
    let (trace, _) = trace_batch(&genesis_b(), &steps);
    assert!(
        matches!(trace[2], MachineState::Running { block_gas_used, .. } if block_gas_used > 21_000)
    );
    let states = states_before(&genesis_b(), &steps, &trace);
    for i in 0..2 {
        check_step(&states[i], &trace[i], &trace[i + 1], &steps[i], true);
    }
}

#[test]
fn message_length_formula_matches_the_abi_encoding() {
    for len in [0usize, 1, 31, 32, 33, 100] {
        let m = Message {
            sourceChain: 1,
            nonce: 2,
            sender: Address::repeat_byte(1),
            destChain: 3,
            recipient: Address::repeat_byte(2),
            value: U256::from(5u64),
            mode: 0,
            payload: vec![1u8; len].into(),
        };
        assert_eq!(
            message_len(len),
            m.abi_encode().len() as u64,
            "payload {len}"
        );
    }
}

#[test]
fn gas_formula() {
    let c = StepCost {
        keccak_calls: 10,
        keccak_bytes: 65,
        ecrecovers: 1,
        witness_bytes: 100,
    };
    assert_eq!(c.gas(), 21_000 + 300 + 6 * 3 + 3_000 + 1_600);
    assert_eq!(StepCost::default().gas(), 21_000);
    let huge = StepCost {
        keccak_calls: u64::MAX,
        keccak_bytes: u64::MAX,
        ecrecovers: u64::MAX,
        witness_bytes: u64::MAX,
    };
    assert_eq!(huge.gas(), u64::MAX);
}

#[test]
fn chain_state_stays_send_and_sync() {
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<ChainState>();
    assert_sync::<StepWitness>();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random batches: every step verified statelessly reproduces the full-execution trace;
    /// omitting any item, tampering any value or proof, or a wrong pre-state fails.
    #[test]
    fn random_batches_verify_step_by_step(ops in prop::collection::vec(op_strategy(), 1..24)) {
        run_batch_checks(&ops, true);
    }

    /// Longer, mostly valid batches (no deliberate invalid items), checked without tampering.
    #[test]
    fn long_valid_batches_verify_step_by_step(
        ops in prop::collection::vec(op_strategy(), 20..60)
            .prop_map(|ops| ops.into_iter().filter(|o| !matches!(o, Op::Invalid { .. })).collect::<Vec<_>>())
    ) {
        run_batch_checks(&ops, false);
    }
}
