#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use alloy_consensus::{SignableTransaction, TxEip1559, TxEip2930, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Bytes, Signature, TxKind};
use alloy_sol_types::{SolCall, SolEvent};
use braid_primitives::{
    message_root_leaf, IMessenger, ImportKind, Message, MessageProof, SETTLEMENT_LAYER_CHAIN_ID,
};

const A: ChainId = 901;
const B: ChainId = 902;
const ETH: u128 = 1_000_000_000_000_000_000;

fn alice() -> TxSigner {
    TxSigner::dev(0)
}
fn bob() -> TxSigner {
    TxSigner::dev(1)
}
fn sequencer() -> Address {
    Address::repeat_byte(0x5e)
}

fn genesis(chain: ChainId) -> ChainState {
    ChainState::genesis(
        chain,
        &[
            (alice().address(), U256::from(100 * ETH)),
            (bob().address(), U256::from(ETH)),
        ],
    )
}

fn env(chain: ChainId, number: u64) -> BlockEnv {
    BlockEnv {
        chain_id: chain,
        number,
        timestamp_ms: number * 1000,
        sequencer: sequencer(),
        base_fee: 1_000_000_000,
        gas_limit: 30_000_000,
    }
}

fn transfer(chain: ChainId, nonce: u64, to: Address, value: u128) -> Bytes {
    alice()
        .call(chain, nonce, to, U256::from(value), Bytes::new(), 21_000)
        .unwrap()
}

fn send_message_input(dest: ChainId, recipient: Address, payload: &[u8]) -> Bytes {
    IMessenger::sendMessageWithModeCall {
        destChain: U256::from(dest),
        recipient,
        payload: Bytes::copy_from_slice(payload),
        mode: ImportKind::Precommit as u8,
    }
    .abi_encode()
    .into()
}

/// Applies `raw` and expects `err`, and checks nothing changed.
fn assert_rejected(state: &mut ChainState, raw: &[u8], check: impl Fn(&ExecutionError) -> bool) {
    let root = state.state_root();
    let before = state.clone();
    let result =
        RecoveredTx::decode(raw).and_then(|tx| apply_transaction(state, &env(A, 1), &tx, 0));
    let err = result.expect_err("transaction must be rejected");
    assert!(check(&err), "unexpected error: {err:?}");
    assert_eq!(state.state_root(), root, "state changed after {err:?}");
    assert_eq!(
        state.account(&alice().address()),
        before.account(&alice().address())
    );
    assert_eq!(state.totals(), before.totals());
}

#[test]
fn transfer_moves_value_charges_fees_and_conserves_value() {
    let mut s = genesis(A);
    let root0 = s.state_root();
    let tx = RecoveredTx::decode(&transfer(A, 0, bob().address(), ETH)).unwrap();
    assert_eq!(tx.sender, alice().address());
    let r = apply_transaction(&mut s, &env(A, 1), &tx, 0).unwrap();
    assert_eq!(r.gas_used, 21_000);
    // tip = min(1 gwei priority, 100 gwei cap - 1 gwei base) = 1 gwei
    assert_eq!(r.effective_gas_price, 2_000_000_000);
    let fee = U256::from(21_000u64 * 2_000_000_000);
    assert_eq!(
        s.account(&alice().address()).balance,
        U256::from(99 * ETH) - fee
    );
    assert_eq!(s.account(&alice().address()).nonce, 1);
    assert_eq!(s.account(&bob().address()).balance, U256::from(2 * ETH));
    assert_eq!(
        s.account(&sequencer()).balance,
        U256::from(21_000u64 * 1_000_000_000)
    );
    assert_eq!(
        s.totals().burned_fees,
        U256::from(21_000u64 * 1_000_000_000)
    );
    assert!(s.value_conserved());
    assert_ne!(s.state_root(), root0);
}

#[test]
fn legacy_eip155_transactions_execute() {
    let mut s = genesis(A);
    let raw = alice()
        .sign_legacy(TxLegacy {
            chain_id: Some(A),
            nonce: 0,
            gas_price: 2_000_000_000,
            gas_limit: 21_000,
            to: TxKind::Call(bob().address()),
            value: U256::from(5u64),
            input: Bytes::new(),
        })
        .unwrap();
    let tx = RecoveredTx::decode(&raw).unwrap();
    assert_eq!(tx.sender, alice().address());
    apply_transaction(&mut s, &env(A, 1), &tx, 0).unwrap();
    assert_eq!(s.account(&bob().address()).balance, U256::from(ETH + 5));
}

#[test]
fn bad_rlp_is_malformed_tx() {
    let mut s = genesis(A);
    let mut raw = transfer(A, 0, bob().address(), 1).to_vec();
    raw.truncate(raw.len() - 5);
    assert_rejected(&mut s, &raw, |e| {
        matches!(e, ExecutionError::MalformedTx { .. })
    });
    assert_rejected(&mut s, &[0x02, 0xff, 0x00], |e| {
        matches!(e, ExecutionError::MalformedTx { .. })
    });
    let mut trailing = transfer(A, 0, bob().address(), 1).to_vec();
    trailing.push(0);
    assert_rejected(&mut s, &trailing, |e| {
        matches!(e, ExecutionError::MalformedTx { .. })
    });
}

#[test]
fn wrong_chain_id_is_rejected() {
    let mut s = genesis(A);
    let raw = transfer(B, 0, bob().address(), 1);
    assert_rejected(&mut s, &raw, |e| {
        *e == ExecutionError::WrongChainId {
            expected: A,
            got: B,
        }
    });
}

#[test]
fn bad_signature_is_rejected() {
    let mut s = genesis(A);
    let tx = TxEip1559 {
        chain_id: A,
        nonce: 0,
        gas_limit: 21_000,
        max_fee_per_gas: 2_000_000_000,
        max_priority_fee_per_gas: 1,
        to: TxKind::Call(bob().address()),
        value: U256::from(1u64),
        access_list: Default::default(),
        input: Bytes::new(),
    };
    // r = 0 is not a valid ECDSA signature: nothing can be recovered from it.
    let sig = Signature::new(U256::ZERO, U256::from(1u64), false);
    let raw = TxEnvelope::from(tx.into_signed(sig)).encoded_2718();
    assert_rejected(&mut s, &raw, |e| {
        matches!(e, ExecutionError::BadSignature { .. })
    });
}

#[test]
fn nonce_gap_and_nonce_reuse_are_rejected() {
    let mut s = genesis(A);
    let raw = transfer(A, 3, bob().address(), 1);
    assert_rejected(&mut s, &raw, |e| {
        matches!(
            e,
            ExecutionError::NonceGap {
                expected: 0,
                got: 3,
                ..
            }
        )
    });
    let tx = RecoveredTx::decode(&transfer(A, 0, bob().address(), 1)).unwrap();
    apply_transaction(&mut s, &env(A, 1), &tx, 0).unwrap();
    assert_rejected(&mut s, &tx.raw, |e| {
        matches!(
            e,
            ExecutionError::NonceTooLow {
                expected: 1,
                got: 0,
                ..
            }
        )
    });
}

#[test]
fn insufficient_balance_is_rejected() {
    let mut s = genesis(A);
    let raw = transfer(A, 0, bob().address(), 100 * ETH); // value alone is the whole balance
    assert_rejected(&mut s, &raw, |e| {
        matches!(e, ExecutionError::InsufficientBalance { .. })
    });
}

#[test]
fn oversize_tx_is_rejected_before_decoding() {
    let mut s = genesis(A);
    let big = vec![0xab; MAX_TX_BYTES + 1];
    let raw = alice()
        .call(
            A,
            0,
            bob().address(),
            U256::ZERO,
            Bytes::from(big),
            30_000_000,
        )
        .unwrap();
    assert_rejected(&mut s, &raw, |e| {
        matches!(e, ExecutionError::TxTooLarge { .. })
    });
}

#[test]
fn gas_and_fee_limits_are_enforced() {
    let mut s = genesis(A);
    let low_gas = alice()
        .call(
            A,
            0,
            bob().address(),
            U256::from(1u64),
            Bytes::new(),
            20_999,
        )
        .unwrap();
    assert_rejected(&mut s, &low_gas, |e| {
        matches!(e, ExecutionError::IntrinsicGasTooLow { .. })
    });
    let cheap = alice()
        .sign_eip1559(TxEip1559 {
            chain_id: A,
            nonce: 0,
            gas_limit: 21_000,
            max_fee_per_gas: 999_999_999,
            max_priority_fee_per_gas: 0,
            to: TxKind::Call(bob().address()),
            value: U256::ZERO,
            access_list: Default::default(),
            input: Bytes::new(),
        })
        .unwrap();
    assert_rejected(&mut s, &cheap, |e| {
        matches!(e, ExecutionError::FeeCapBelowBaseFee { .. })
    });
    let huge = alice()
        .call(A, 0, bob().address(), U256::ZERO, Bytes::new(), 30_000_001)
        .unwrap();
    assert_rejected(&mut s, &huge, |e| {
        matches!(e, ExecutionError::GasLimitAboveBlock { .. })
    });
}

#[test]
fn unsupported_kinds_are_rejected() {
    let mut s = genesis(A);
    let pre155 = alice()
        .sign_legacy(TxLegacy {
            chain_id: None,
            nonce: 0,
            gas_price: 2_000_000_000,
            gas_limit: 21_000,
            to: TxKind::Call(bob().address()),
            value: U256::ZERO,
            input: Bytes::new(),
        })
        .unwrap();
    assert_rejected(&mut s, &pre155, |e| *e == ExecutionError::MissingChainId);
    let tx = TxEip2930 {
        chain_id: A,
        nonce: 0,
        gas_price: 2_000_000_000,
        gas_limit: 21_000,
        to: TxKind::Call(bob().address()),
        value: U256::ZERO,
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let sig = Signature::new(U256::from(1u64), U256::from(1u64), false);
    let raw = TxEnvelope::from(tx.into_signed(sig)).encoded_2718();
    assert_rejected(&mut s, &raw, |e| {
        *e == ExecutionError::UnsupportedTxType { tx_type: 1 }
    });
    let create = alice()
        .sign_eip1559(TxEip1559 {
            chain_id: A,
            nonce: 0,
            gas_limit: 100_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 0,
            to: TxKind::Create,
            value: U256::ZERO,
            access_list: Default::default(),
            input: Bytes::from_static(&[0x60, 0x00]),
        })
        .unwrap();
    assert_rejected(&mut s, &create, |e| {
        *e == ExecutionError::ContractCreationUnsupported
    });
}

/// Sends one message A → B with `value` and returns the source state and the message.
fn send_one(value: u128, payload: &[u8]) -> (ChainState, Message, TxReceipt) {
    let mut a = genesis(A);
    let raw = alice()
        .call(
            A,
            0,
            MESSENGER_ADDRESS,
            U256::from(value),
            send_message_input(B, bob().address(), payload),
            200_000,
        )
        .unwrap();
    let tx = RecoveredTx::decode(&raw).unwrap();
    let receipt = apply_transaction(&mut a, &env(A, 1), &tx, 0).unwrap();
    let message = Message {
        sourceChain: A,
        nonce: 0,
        sender: alice().address(),
        destChain: B,
        recipient: bob().address(),
        value: U256::from(value),
        mode: ImportKind::Precommit as u8,
        payload: Bytes::copy_from_slice(payload),
    };
    (a, message, receipt)
}

fn precommit_import(a: &ChainState, height: u64) -> ImportedRoot {
    ImportedRoot {
        kind: ImportKind::Precommit as u8,
        sourceChain: A,
        sourceHeight: height,
        root: a.outbox().root(),
        messageCount: a.outbox().len(),
    }
}

fn precommit_proof(a: &ChainState, index: u64) -> MessageProof {
    let p = a.outbox().inclusion_proof(index, a.outbox().len()).unwrap();
    crate::single_level_proof(ImportKind::Precommit, a.outbox().root(), p)
}

fn execute_input(message: &Message, proof: &MessageProof) -> Bytes {
    IMessenger::executeMessageCall {
        message: message.clone(),
        proof: proof.clone(),
    }
    .abi_encode()
    .into()
}

fn execute_on(
    b: &mut ChainState,
    nonce: u64,
    message: &Message,
    proof: &MessageProof,
) -> Result<TxReceipt, ExecutionError> {
    let raw = bob()
        .call(
            B,
            nonce,
            MESSENGER_ADDRESS,
            U256::ZERO,
            execute_input(message, proof),
            500_000,
        )
        .unwrap();
    let tx = RecoveredTx::decode(&raw).unwrap();
    apply_transaction(b, &env(B, 1), &tx, 0)
}

#[test]
fn send_message_appends_to_the_outbox_and_emits_message_sent() {
    let (a, message, receipt) = send_one(ETH, b"ping");
    assert_eq!(a.outbox().len(), 1);
    assert_eq!(a.outbox().leaf(0), Some(message.leaf_hash()));
    assert_eq!(receipt.message_sent, Some(message.id()));
    assert_eq!(a.totals().sent_out, U256::from(ETH));
    assert!(a.value_conserved());
    let log = &receipt.logs[0];
    assert_eq!(log.address, MESSENGER_ADDRESS);
    let decoded = IMessenger::MessageSent::decode_log_data(&log.data).unwrap();
    assert_eq!(decoded.leaf, message.leaf_hash());
    assert_eq!(decoded.destChain, B);
    assert_eq!(decoded.value, U256::from(ETH));
}

#[test]
fn message_executes_once_on_the_destination_against_an_imported_local_root() {
    let (a, message, _) = send_one(ETH, b"ping");
    let mut b = genesis(B);
    apply_import(&mut b, &precommit_import(&a, 1)).unwrap();
    let proof = precommit_proof(&a, 0);
    let bob_before = b.account(&bob().address()).balance;
    let receipt = execute_on(&mut b, 0, &message, &proof).unwrap();
    assert_eq!(receipt.message_executed, Some(message.id()));
    let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    assert_eq!(
        b.account(&bob().address()).balance,
        bob_before + U256::from(ETH) - fee
    );
    assert!(b.is_executed(&message.id()));
    assert!(b.value_conserved());
    // value left A exactly as it arrived on B
    assert_eq!(a.totals().sent_out, b.totals().received_in);
    let decoded = IMessenger::MessageExecuted::decode_log_data(&receipt.logs[0].data).unwrap();
    assert_eq!(decoded.leaf, message.leaf_hash());

    // replay: same message, fresh transaction
    let root = b.state_root();
    let err = execute_on(&mut b, 1, &message, &proof).unwrap_err();
    assert_eq!(err, ExecutionError::AlreadyExecuted { id: message.id() });
    assert_eq!(b.state_root(), root);
}

#[test]
fn forged_or_unimported_proofs_are_rejected_with_state_unchanged() {
    let (a, message, _) = send_one(ETH, b"ping");
    let mut b = genesis(B);
    let good = precommit_proof(&a, 0);

    // root never imported
    let root = b.state_root();
    let err = execute_on(&mut b, 0, &message, &good).unwrap_err();
    assert!(
        matches!(err, ExecutionError::RootNotImported { .. }),
        "{err:?}"
    );
    assert_eq!(b.state_root(), root);

    apply_import(&mut b, &precommit_import(&a, 1)).unwrap();
    let root = b.state_root();

    // forged message: more value than was sent
    let mut forged = message.clone();
    forged.value = U256::from(1000 * ETH);
    let err = execute_on(&mut b, 0, &forged, &good).unwrap_err();
    assert!(matches!(err, ExecutionError::BadProof(_)), "{err:?}");

    // tampered proof
    let (a2, _, _) = {
        let mut a2 = a.clone();
        let raw = alice()
            .call(
                A,
                1,
                MESSENGER_ADDRESS,
                U256::ZERO,
                send_message_input(B, bob().address(), b"x"),
                200_000,
            )
            .unwrap();
        let tx = RecoveredTx::decode(&raw).unwrap();
        let r = apply_transaction(&mut a2, &env(A, 2), &tx, 0).unwrap();
        (a2, (), r)
    };
    let mut b2 = genesis(B);
    apply_import(&mut b2, &precommit_import(&a2, 2)).unwrap();
    let mut tampered = precommit_proof(&a2, 0);
    tampered.siblings[0].0[3] ^= 1;
    let root2 = b2.state_root();
    let err = execute_on(&mut b2, 0, &message, &tampered).unwrap_err();
    assert!(matches!(err, ExecutionError::BadProof(_)), "{err:?}");
    assert_eq!(b2.state_root(), root2);

    // wrong leaf index / size claims
    let mut wrong_index = good.clone();
    wrong_index.leafIndex = 1;
    assert!(matches!(
        execute_on(&mut b, 0, &message, &wrong_index).unwrap_err(),
        ExecutionError::ProofMismatch { .. }
    ));
    let mut wrong_size = good.clone();
    wrong_size.treeSize = 2;
    assert!(matches!(
        execute_on(&mut b, 0, &message, &wrong_size).unwrap_err(),
        ExecutionError::ProofMismatch { .. }
    ));
    // a message for another chain
    let mut elsewhere = message.clone();
    elsewhere.destChain = 903;
    assert!(matches!(
        execute_on(&mut b, 0, &elsewhere, &good).unwrap_err(),
        ExecutionError::WrongDestination { .. }
    ));
    assert_eq!(b.state_root(), root);
    assert!(!b.is_executed(&message.id()));
}

#[test]
fn proof_mode_two_level_proof_executes() {
    let (a, message, _) = send_one(7, b"via the SL");
    // the SL's global tree: some other batch first, then A's batch 1
    let chain_batch_root = a.outbox().root();
    let mut global = braid_merkle::MessageTree::new();
    global
        .append(message_root_leaf(903, 1, B256::repeat_byte(9), 4))
        .unwrap();
    global
        .append(message_root_leaf(A, 1, chain_batch_root, 1))
        .unwrap();
    let mut b = genesis(B);
    apply_import(
        &mut b,
        &ImportedRoot {
            kind: ImportKind::Proof as u8,
            sourceChain: SETTLEMENT_LAYER_CHAIN_ID,
            sourceHeight: 10,
            root: global.root(),
            messageCount: global.len(),
        },
    )
    .unwrap();
    let inner = a.outbox().inclusion_proof(0, 1).unwrap();
    let outer = global.inclusion_proof(1, 2).unwrap();
    let proof = crate::two_level_proof(global.root(), 1, chain_batch_root, inner, outer);
    let mut wrong_batch = proof.clone();
    wrong_batch.batchNumber = 2;
    assert!(matches!(
        execute_on(&mut b, 0, &message, &wrong_batch).unwrap_err(),
        ExecutionError::BadProof(_)
    ));
    execute_on(&mut b, 0, &message, &proof).unwrap();
    assert!(b.is_executed(&message.id()));
}

#[test]
fn messenger_rejects_bad_calls() {
    let mut s = genesis(A);
    let call = |input: Bytes, value: u128| {
        alice()
            .call(A, 0, MESSENGER_ADDRESS, U256::from(value), input, 200_000)
            .unwrap()
    };
    assert_rejected(&mut s, &call(Bytes::from_static(&[1, 2]), 0), |e| {
        matches!(e, ExecutionError::UnknownSelector { .. })
    });
    let mut truncated = send_message_input(B, bob().address(), b"abc").to_vec();
    truncated.truncate(40);
    assert_rejected(&mut s, &call(truncated.into(), 0), |e| {
        matches!(e, ExecutionError::MalformedCall { .. })
    });
    assert_rejected(
        &mut s,
        &call(send_message_input(A, bob().address(), b""), 0),
        |e| matches!(e, ExecutionError::InvalidDestination { .. }),
    );
    let (_, message, _) = send_one(1, b"");
    let proof = MessageProof {
        kind: 0,
        sourceHeight: 0,
        root: B256::ZERO,
        leafIndex: 0,
        treeSize: 1,
        siblings: vec![],
        batchNumber: 0,
        chainBatchRoot: B256::ZERO,
        outerIndex: 0,
        outerSize: 0,
        outerSiblings: vec![],
    };
    assert_rejected(&mut s, &call(execute_input(&message, &proof), 5), |e| {
        *e == ExecutionError::ValueNotAccepted
    });
}

#[test]
fn imports_are_validated_and_idempotent() {
    let mut b = genesis(B);
    let imp = ImportedRoot {
        kind: 0,
        sourceChain: A,
        sourceHeight: 3,
        root: B256::repeat_byte(1),
        messageCount: 2,
    };
    apply_import(&mut b, &imp).unwrap();
    let root = b.state_root();
    apply_import(&mut b, &imp).unwrap();
    assert_eq!(b.state_root(), root);
    let mut conflicting = imp.clone();
    conflicting.messageCount = 3;
    assert!(matches!(
        apply_import(&mut b, &conflicting),
        Err(ExecutionError::InvalidImport { .. })
    ));
    let mut own = imp.clone();
    own.sourceChain = B;
    assert_eq!(
        apply_import(&mut b, &own),
        Err(ExecutionError::ImportFromSelf { chain: B })
    );
    let mut bad_kind = imp;
    bad_kind.kind = 7;
    assert!(matches!(
        apply_import(&mut b, &bad_kind),
        Err(ExecutionError::InvalidImport { .. })
    ));
    assert_eq!(b.state_root(), root);
}

#[test]
fn execute_block_reproduces_the_header_and_detects_tampering() {
    let mut builder = genesis(A);
    let mut replica = builder.clone();
    let e = env(A, 1);
    let raws = [
        transfer(A, 0, bob().address(), 5),
        alice()
            .call(
                A,
                1,
                MESSENGER_ADDRESS,
                U256::from(3u64),
                send_message_input(B, bob().address(), b"hi"),
                200_000,
            )
            .unwrap(),
    ];
    let mut gas = 0;
    let mut hashes = vec![];
    for raw in &raws {
        let tx = RecoveredTx::decode(raw).unwrap();
        gas = apply_transaction(&mut builder, &e, &tx, gas)
            .unwrap()
            .cumulative_gas_used;
        hashes.push(tx.hash);
    }
    let header = seal_header(&mut builder, &e, B256::ZERO, &[], &[], &hashes, gas);
    let block = Block {
        header,
        imports: vec![],
        deposits: vec![],
        transactions: raws.to_vec(),
    };

    let mut tampered = block.clone();
    tampered.header.stateRoot = B256::repeat_byte(1);
    let err = execute_block(&mut replica.clone(), B256::ZERO, &tampered).unwrap_err();
    assert!(
        matches!(
            err,
            ExecutionError::HeaderMismatch {
                field: "stateRoot",
                ..
            }
        ),
        "{err:?}"
    );
    let mut tampered = block.clone();
    tampered.header.localRoot = B256::repeat_byte(1);
    assert!(matches!(
        execute_block(&mut replica.clone(), B256::ZERO, &tampered),
        Err(ExecutionError::HeaderMismatch {
            field: "localRoot",
            ..
        })
    ));
    let out = execute_block(&mut replica, B256::ZERO, &block).unwrap();
    assert_eq!(out.receipts.len(), 2);
    assert_eq!(replica.state_root(), builder.state_root());
}

#[test]
fn state_items_are_provable_and_restore_gives_the_same_root() {
    let (mut a, message, _) = send_one(ETH, b"ping");
    let (root, value, proof) = a.prove(&StateKey::Account(alice().address()));
    let value = value.unwrap();
    braid_state::verify_proof(
        root,
        StateKey::Account(alice().address()).smt_key(),
        Some(value.smt_value()),
        &proof,
    )
    .unwrap();
    let absent = StateKey::Executed(message.id());
    let (root, none, proof) = a.prove(&absent);
    assert!(none.is_none());
    braid_state::verify_proof(root, absent.smt_key(), None, &proof).unwrap();

    let changes = a.take_changes();
    let entries = changes
        .entries
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)));
    let mut restored = ChainState::restore(A, entries, changes.outbox_leaves).unwrap();
    assert_eq!(restored.state_root(), a.state_root());
    assert_eq!(restored.outbox().root(), a.outbox().root());
}

#[test]
fn deposits_apply_in_order_once_and_conserve_value() {
    let mut s = genesis(A);
    let deposit = |index: u64, chain: ChainId| braid_primitives::Deposit {
        index,
        chainId: chain,
        sender: Address::repeat_byte(0x51),
        recipient: bob().address(),
        amount: U256::from(5 * ETH),
        queuedAtMs: 0,
    };
    let root = s.state_root();
    assert!(matches!(
        apply_deposit(&mut s, &deposit(1, A)),
        Err(ExecutionError::BadDeposit {
            got: 1,
            expected: 0,
            ..
        })
    ));
    assert!(matches!(
        apply_deposit(&mut s, &deposit(0, B)),
        Err(ExecutionError::BadDeposit { .. })
    ));
    assert_eq!(s.state_root(), root);
    apply_deposit(&mut s, &deposit(0, A)).unwrap();
    assert_eq!(s.account(&bob().address()).balance, U256::from(6 * ETH));
    assert_eq!(s.totals().deposit_count, 1);
    assert_eq!(s.totals().deposited_in, U256::from(5 * ETH));
    assert!(s.value_conserved());
    let replay = apply_deposit(&mut s, &deposit(0, A));
    assert!(matches!(
        replay,
        Err(ExecutionError::BadDeposit {
            got: 0,
            expected: 1,
            ..
        })
    ));
}

#[test]
fn a_message_executes_only_against_a_root_as_strong_as_its_mode() {
    // the 3-argument sendMessage asks for `proof` mode
    let mut a = genesis(A);
    let input: Bytes = IMessenger::sendMessageCall {
        destChain: U256::from(B),
        recipient: bob().address(),
        payload: Bytes::from_static(b"safe"),
    }
    .abi_encode()
    .into();
    let raw = alice()
        .call(A, 0, MESSENGER_ADDRESS, U256::from(3u64), input, 200_000)
        .unwrap();
    let receipt =
        apply_transaction(&mut a, &env(A, 1), &RecoveredTx::decode(&raw).unwrap(), 0).unwrap();
    let ev = IMessenger::MessageSent::decode_log_data(&receipt.logs[0].data).unwrap();
    assert_eq!(ev.mode, ImportKind::Proof as u8);
    let message = Message {
        sourceChain: A,
        nonce: 0,
        sender: alice().address(),
        destChain: B,
        recipient: bob().address(),
        value: U256::from(3u64),
        mode: ev.mode,
        payload: Bytes::from_static(b"safe"),
    };
    assert_eq!(message.leaf_hash(), ev.leaf);
    // a valid pre-commit proof is not enough for it
    let mut b = genesis(B);
    apply_import(&mut b, &precommit_import(&a, 1)).unwrap();
    let root = b.state_root();
    let err = execute_on(&mut b, 0, &message, &precommit_proof(&a, 0)).unwrap_err();
    assert_eq!(
        err,
        ExecutionError::ModeTooWeak {
            requested: ImportKind::Proof,
            proven: ImportKind::Precommit
        }
    );
    assert_eq!(b.state_root(), root);
    // an unknown mode is refused at send time
    let bad_mode: Bytes = IMessenger::sendMessageWithModeCall {
        destChain: U256::from(B),
        recipient: bob().address(),
        payload: Bytes::new(),
        mode: 9,
    }
    .abi_encode()
    .into();
    let raw = alice()
        .call(A, 1, MESSENGER_ADDRESS, U256::ZERO, bad_mode, 200_000)
        .unwrap();
    assert!(matches!(
        apply_transaction(&mut a, &env(A, 2), &RecoveredTx::decode(&raw).unwrap(), 0),
        Err(ExecutionError::MalformedCall { .. })
    ));
}

#[test]
fn views_and_gas_estimates_read_without_writing() {
    let (mut a, message, receipt) = send_one(ETH, b"ping");
    let root = a.state_root();
    // localRoot() returns the outbox root and size
    let out = call_view(
        &a,
        Address::ZERO,
        MESSENGER_ADDRESS,
        U256::ZERO,
        &IMessenger::localRootCall {}.abi_encode(),
    )
    .unwrap();
    let ret = IMessenger::localRootCall::abi_decode_returns(&out).unwrap();
    assert_eq!((ret.root, ret.messageCount), (a.outbox().root(), 1));
    // isExecuted on the destination flips after execution
    let mut b = genesis(B);
    apply_import(&mut b, &precommit_import(&a, 1)).unwrap();
    let ask = IMessenger::isExecutedCall {
        sourceChain: A,
        nonce: 0,
    }
    .abi_encode();
    let before = call_view(&b, Address::ZERO, MESSENGER_ADDRESS, U256::ZERO, &ask).unwrap();
    assert!(!IMessenger::isExecutedCall::abi_decode_returns(&before).unwrap());
    execute_on(&mut b, 0, &message, &precommit_proof(&a, 0)).unwrap();
    let after = call_view(&b, Address::ZERO, MESSENGER_ADDRESS, U256::ZERO, &ask).unwrap();
    assert!(IMessenger::isExecutedCall::abi_decode_returns(&after).unwrap());
    // the estimate of a send equals the gas the real transaction used
    let input = send_message_input(B, bob().address(), b"ping");
    let est = estimate_gas(
        &a,
        alice().address(),
        Some(MESSENGER_ADDRESS),
        U256::from(ETH),
        &input,
    )
    .unwrap();
    assert_eq!(est, receipt.gas_used);
    assert_eq!(
        estimate_gas(
            &a,
            alice().address(),
            Some(bob().address()),
            U256::ZERO,
            &[]
        )
        .unwrap(),
        21_000
    );
    assert!(matches!(
        estimate_gas(
            &a,
            alice().address(),
            Some(MESSENGER_ADDRESS),
            U256::ZERO,
            &[9, 9, 9, 9]
        ),
        Err(ExecutionError::UnknownSelector { .. })
    ));
    assert_eq!(a.state_root(), root);
}
