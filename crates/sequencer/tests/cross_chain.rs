//! Two chains driven by their sequencer cores: a message sent on A executes on B after B imports
//! A's LocalRoot (pre-commit) or A's ChainBatchRoot (commit), exactly once.
#![allow(clippy::unwrap_used, clippy::panic)]

use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::{SolCall, SolEvent};
use braid_execution::{ExecutionError, TxSigner};
use braid_primitives::{
    IMessenger, ImportKind, ImportedRoot, Message, MessageProof, MESSENGER_ADDRESS,
};
use braid_sequencer::{SealedBlock, Sequencer, SequencerConfig, SequencerInput, SequencerOutput};

const A: u64 = 901;
const B: u64 = 902;
const ETH: u128 = 1_000_000_000_000_000_000;

fn chain(id: u64) -> Sequencer {
    let mut c = SequencerConfig::new(id);
    c.batch_blocks = 2;
    let alloc: Vec<_> = (0..3)
        .map(|i| (TxSigner::dev(i).address(), U256::from(10 * ETH)))
        .collect();
    Sequencer::genesis(c, &alloc).unwrap().0
}

fn tick(seq: &mut Sequencer, now_ms: u64) -> Vec<SequencerOutput> {
    seq.handle(SequencerInput::Tick { now_ms })
}

fn sealed(out: &[SequencerOutput]) -> &SealedBlock {
    out.iter()
        .find_map(|o| match o {
            SequencerOutput::BlockSealed(b) => Some(&**b),
            _ => None,
        })
        .unwrap()
}

fn submit(seq: &mut Sequencer, raw: Bytes) {
    let out = seq.handle(SequencerInput::SubmitTx { raw });
    assert!(
        matches!(&out[..], [SequencerOutput::TxAccepted { .. }]),
        "{out:?}"
    );
}

fn proof_for(src: &Sequencer, kind: ImportKind, nonce: u64, size: u64) -> MessageProof {
    let tree = src.state().outbox();
    let p = tree.inclusion_proof(nonce, size).unwrap();
    braid_execution::single_level_proof(kind, tree.root_at(size).unwrap(), p)
}

fn execute_tx(relayer: &TxSigner, nonce: u64, message: &Message, proof: MessageProof) -> Bytes {
    let input = IMessenger::executeMessageCall {
        message: message.clone(),
        proof,
    }
    .abi_encode();
    relayer
        .call(
            B,
            nonce,
            MESSENGER_ADDRESS,
            U256::ZERO,
            input.into(),
            300_000,
        )
        .unwrap()
}

#[test]
fn messages_flow_a_to_b_in_precommit_and_commit_modes_exactly_once() {
    let mut a = chain(A);
    let mut b = chain(B);
    let alice = TxSigner::dev(0);
    let relayer = TxSigner::dev(2);
    let bob = Address::repeat_byte(0xb0);

    let send = |nonce: u64, value: u128, payload: &'static [u8]| {
        let input = IMessenger::sendMessageWithModeCall {
            destChain: U256::from(B),
            recipient: bob,
            payload: Bytes::from_static(payload),
            mode: ImportKind::Precommit as u8,
        }
        .abi_encode();
        alice
            .call(
                A,
                nonce,
                MESSENGER_ADDRESS,
                U256::from(value),
                input.into(),
                200_000,
            )
            .unwrap()
    };

    // block 1 on A: the first message
    submit(&mut a, send(0, ETH, b"precommit"));
    let out = tick(&mut a, 1000);
    let a1 = sealed(&out).clone();
    let sent = &a1.receipts[0];
    let id = sent.message_sent.unwrap();
    let decoded = IMessenger::MessageSent::decode_log_data(&sent.logs[0].data).unwrap();
    let message = Message {
        sourceChain: A,
        nonce: id.nonce,
        sender: alice.address(),
        destChain: B,
        recipient: bob,
        value: decoded.value,
        mode: decoded.mode,
        payload: decoded.payload.clone(),
    };
    assert_eq!(message.leaf_hash(), decoded.leaf);

    // pre-commit: B imports A's LocalRoot after block 1
    let h = &a1.block.header;
    let import = ImportedRoot {
        kind: ImportKind::Precommit as u8,
        sourceChain: A,
        sourceHeight: h.number,
        root: h.localRoot,
        messageCount: h.messageCount,
    };
    b.handle(SequencerInput::Import(import.clone()));
    let b1 = sealed(&tick(&mut b, 1000)).clone();
    assert_eq!(b1.block.imports, vec![import]);
    submit(
        &mut b,
        execute_tx(
            &relayer,
            0,
            &message,
            proof_for(&a, ImportKind::Precommit, 0, 1),
        ),
    );
    let b2 = sealed(&tick(&mut b, 2000)).clone();
    assert_eq!(b2.receipts[0].message_executed, Some(id));
    assert_eq!(b.state().account(&bob).balance, U256::from(ETH));

    // the same message again: admitted (valid tx) but dropped at execution as a replay
    submit(
        &mut b,
        execute_tx(
            &relayer,
            1,
            &message,
            proof_for(&a, ImportKind::Precommit, 0, 1),
        ),
    );
    let out = tick(&mut b, 3000);
    assert!(out.iter().any(|o| matches!(o,
        SequencerOutput::TxDropped { error: ExecutionError::AlreadyExecuted { id: x }, .. } if *x == id)));
    assert!(sealed(&out).block.transactions.is_empty());
    assert_eq!(b.state().account(&bob).balance, U256::from(ETH));

    // commit mode: a second message, imported once A's batch 1 (blocks 1-2) is sealed
    submit(&mut a, send(1, 2 * ETH, b"commit"));
    let out = tick(&mut a, 2000);
    let batch = out
        .iter()
        .find_map(|o| match o {
            SequencerOutput::BatchSealed(b) => Some(b.header.clone()),
            _ => None,
        })
        .expect("batch 1 sealed after two blocks");
    assert_eq!(
        (batch.firstBlock, batch.lastBlock, batch.messageCount),
        (1, 2, 2)
    );
    let message2 = Message {
        sourceChain: A,
        nonce: 1,
        sender: alice.address(),
        destChain: B,
        recipient: bob,
        value: U256::from(2 * ETH),
        mode: ImportKind::Precommit as u8,
        payload: Bytes::from_static(b"commit"),
    };
    b.handle(SequencerInput::Import(ImportedRoot {
        kind: ImportKind::Commit as u8,
        sourceChain: A,
        sourceHeight: batch.number,
        root: batch.chainBatchRoot,
        messageCount: batch.messageCount,
    }));
    tick(&mut b, 4000);
    // a proof against the pre-commit root does not cover message 2; the commit proof does
    let relayer_nonce = b.state().account(&relayer.address()).nonce;
    submit(
        &mut b,
        execute_tx(
            &relayer,
            relayer_nonce,
            &message2,
            proof_for(&a, ImportKind::Commit, 1, 2),
        ),
    );
    let out = tick(&mut b, 5000);
    assert_eq!(
        sealed(&out).receipts[0].message_executed,
        Some(message2.id())
    );
    assert_eq!(b.state().account(&bob).balance, U256::from(3 * ETH));

    // value left A exactly as it arrived on B, and both chains conserve value
    assert_eq!(a.state().totals().sent_out, b.state().totals().received_in);
    assert!(a.state().value_conserved() && b.state().value_conserved());
}
