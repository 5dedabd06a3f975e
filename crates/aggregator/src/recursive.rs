//! The recursive backend: plonky2 proofs (standard recursion config, Goldilocks, Poseidon).
//!
//! One circuit proves leaves and one circuit per level `l = 1..=depth` proves nodes; the level-`l`
//! circuit verifies two proofs of the level-`(l-1)` circuit (constant verifier data), so a proof
//! of level `l` can only be built on valid proofs of the level below. A node with one child
//! verifies its left child's proof twice and ignores the second copy (`has_right = 0`, a constant
//! of the tree shape bound into its hash).
//!
//! Public inputs, the same prefix for every circuit:
//! `[index, checkpoint, prev_hash[4], hash[4]]` then the export slots: for each level
//! `L = 1..=depth` and age `a = 1, 2`, `[present, hash[4]]` (`2 * depth` slots, `10 * depth`
//! elements). The leaf circuit appends the two keccak block hashes as 8 big-endian u32 limbs each
//! (`prev_block_hash`, then `block_hash`), range-checked to 32 bits.
//!
//! Constraints of the leaf circuit: the leaf hashes are `Poseidon(0, chain, limbs)` of the two
//! block hashes; each slot's `present` is boolean and an absent slot's hash is zero.
//! Constraints of the level-`l` node circuit:
//! - both child proofs verify; `left.index = 2 * index`, and with a right child
//!   `right.index = 2 * index + 1`; the root's index is the constant 0, so every position in a
//!   root proof is fixed; both children have the same checkpoint, which is the node's;
//! - `prev = Poseidon(1, l, index, left.prev, right.prev, has_right, x)` with the private input
//!   `x` (the node's hash two checkpoints back) and
//!   `hash = Poseidon(1, l, index, left.hash, right.hash, has_right, prev)` (right zero if absent);
//! - slots of level `L > l`: if both children have one, the hashes are equal; the output is
//!   whichever is present; slots of level `l` are settled: age 1 must equal `prev`, age 2 must
//!   equal `x` (a wrong import leaves no satisfying witness); slots of levels `<= l` are output
//!   empty. The root therefore exports nothing.

use alloy_primitives::B256;
use plonky2::field::types::{Field, PrimeField64};
use plonky2::hash::poseidon::PoseidonHash;
use plonky2::iop::target::{BoolTarget, Target};
use plonky2::iop::witness::{PartialWitness, WitnessWrite};
use plonky2::plonk::circuit_builder::CircuitBuilder;
use plonky2::plonk::circuit_data::{CircuitConfig, CircuitData};
use plonky2::plonk::config::PoseidonGoldilocksConfig;
use plonky2::plonk::proof::{ProofWithPublicInputs, ProofWithPublicInputsTarget};

use crate::hash::{digest_bytes, digest_elements, limbs, F, LEAF_TAG, NODE_TAG};
use crate::tree::leaf_statement;
use crate::{
    AggregatorError, Export, LeafInput, NodeId, NodeStatement, PoseidonHasher, TreeProver,
    TreeShape, TreeVerifier,
};

const D: usize = 2;
type C = PoseidonGoldilocksConfig;
type Proof = ProofWithPublicInputs<F, C, D>;

const PI_INDEX: usize = 0;
const PI_CHECKPOINT: usize = 1;
const PI_PREV: usize = 2;
const PI_HASH: usize = 6;
const PI_EXPORTS: usize = 10;
const SLOT_LEN: usize = 5;

/// Offset of the export slot of level `level` (>= 1) and age `age` (1 or 2).
fn slot_offset(level: u8, age: u8) -> usize {
    PI_EXPORTS + ((usize::from(level) - 1) * 2 + usize::from(age) - 1) * SLOT_LEN
}

/// A plonky2 proof of one tree position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecursiveProof {
    level: u8,
    proof: Proof,
}

impl RecursiveProof {
    /// The level of the circuit that proves it (0 = leaf).
    pub fn level(&self) -> u8 {
        self.level
    }
    /// Wire encoding of the proof and its public inputs (decode with
    /// [`RecursiveBackend::decode_proof`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.proof.to_bytes()
    }
}

struct Slot {
    present: BoolTarget,
    hash: [Target; 4],
}

struct LeafCircuit {
    data: CircuitData<F, C, D>,
    index: Target,
    checkpoint: Target,
    prev_limbs: [Target; 8],
    limbs: [Target; 8],
    slots: Vec<((u8, u8), Slot)>,
}

struct NodeCircuit {
    data: CircuitData<F, C, D>,
    left: ProofWithPublicInputsTarget<D>,
    right: ProofWithPublicInputsTarget<D>,
    /// `None` at the root, whose index is the constant 0.
    index: Option<Target>,
    x: [Target; 4],
}

/// The plonky2 backend for one tree shape: holds the leaf circuit and one circuit per level.
pub struct RecursiveBackend {
    shape: TreeShape,
    leaf: LeafCircuit,
    nodes: Vec<NodeCircuit>,
}

impl std::fmt::Debug for RecursiveBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecursiveBackend")
            .field("shape", &self.shape)
            .field(
                "degree_bits",
                &std::iter::once(&self.leaf.data)
                    .chain(self.nodes.iter().map(|n| &n.data))
                    .map(|d| d.common.degree_bits())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn targets<const N: usize>(b: &mut CircuitBuilder<F, D>) -> [Target; N] {
    std::array::from_fn(|_| b.add_virtual_target())
}

fn recursive_err(e: impl std::fmt::Display) -> AggregatorError {
    AggregatorError::Recursive {
        reason: e.to_string(),
    }
}

fn build_leaf(shape: &TreeShape) -> LeafCircuit {
    let mut b = CircuitBuilder::<F, D>::new(CircuitConfig::standard_recursion_config());
    let index = b.add_virtual_target();
    let checkpoint = b.add_virtual_target();
    b.range_check(index, 32);
    b.range_check(checkpoint, 32);
    let prev_limbs: [Target; 8] = targets(&mut b);
    let limbs: [Target; 8] = targets(&mut b);
    for t in prev_limbs.iter().chain(&limbs) {
        b.range_check(*t, 32);
    }
    let tag = b.constant(F::from_canonical_u64(LEAF_TAG));
    let leaf_hash = |b: &mut CircuitBuilder<F, D>, l: &[Target; 8]| {
        let mut inputs = vec![tag, index];
        inputs.extend(l);
        b.hash_n_to_hash_no_pad::<PoseidonHash>(inputs)
    };
    let prev = leaf_hash(&mut b, &prev_limbs);
    let hash = leaf_hash(&mut b, &limbs);
    let mut slots = Vec::new();
    for level in 1..=shape.depth() {
        for age in 1..=2u8 {
            let present = b.add_virtual_bool_target_safe();
            let hash: [Target; 4] = targets(&mut b);
            let absent = b.not(present);
            for h in hash {
                let z = b.mul(absent.target, h);
                b.assert_zero(z);
            }
            slots.push(((level, age), Slot { present, hash }));
        }
    }
    b.register_public_input(index);
    b.register_public_input(checkpoint);
    b.register_public_inputs(&prev.elements);
    b.register_public_inputs(&hash.elements);
    for (_, slot) in &slots {
        b.register_public_input(slot.present.target);
        b.register_public_inputs(&slot.hash);
    }
    b.register_public_inputs(&prev_limbs);
    b.register_public_inputs(&limbs);
    LeafCircuit {
        data: b.build::<C>(),
        index,
        checkpoint,
        prev_limbs,
        limbs,
        slots,
    }
}

fn build_node(shape: &TreeShape, level: u8, child: &CircuitData<F, C, D>) -> NodeCircuit {
    let mut b = CircuitBuilder::<F, D>::new(CircuitConfig::standard_recursion_config());
    let vd = b.constant_verifier_data(&child.verifier_only);
    let left = b.add_virtual_proof_with_pis(&child.common);
    let right = b.add_virtual_proof_with_pis(&child.common);
    b.verify_proof::<C>(&left, &vd, &child.common);
    b.verify_proof::<C>(&right, &vd, &child.common);
    let lp = left.public_inputs.clone();
    let rp = right.public_inputs.clone();

    // position
    let index_target = (level != shape.depth()).then(|| b.add_virtual_target());
    let index = index_target.unwrap_or_else(|| b.zero());
    let two_index = b.mul_const(F::TWO, index);
    b.connect(lp[PI_INDEX], two_index);
    let has_right = if shape.nodes_at(level - 1) % 2 == 1 {
        let last = b.constant(F::from_canonical_u32(shape.nodes_at(level) - 1));
        let is_last = b.is_equal(index, last);
        b.not(is_last)
    } else {
        b._true()
    };
    let one = b.one();
    let right_index = b.add(two_index, one);
    let diff = b.sub(rp[PI_INDEX], right_index);
    let gated = b.mul(has_right.target, diff);
    b.assert_zero(gated);
    b.connect(lp[PI_CHECKPOINT], rp[PI_CHECKPOINT]);
    let checkpoint = lp[PI_CHECKPOINT];

    // hashes
    let x: [Target; 4] = targets(&mut b);
    let tag = b.constant(F::from_canonical_u64(NODE_TAG));
    let level_t = b.constant(F::from_canonical_u8(level));
    let node_hash = |b: &mut CircuitBuilder<F, D>, at: usize, own_prev: [Target; 4]| {
        let mut inputs = vec![tag, level_t, index];
        inputs.extend(&lp[at..at + 4]);
        for r in &rp[at..at + 4] {
            inputs.push(b.mul(has_right.target, *r));
        }
        inputs.push(has_right.target);
        inputs.extend(own_prev);
        b.hash_n_to_hash_no_pad::<PoseidonHash>(inputs).elements
    };
    let prev = node_hash(&mut b, PI_PREV, x);
    let hash = node_hash(&mut b, PI_HASH, prev);

    // exports
    let zero = b.zero();
    let mut out_slots = Vec::new();
    for slot_level in 1..=shape.depth() {
        for age in 1..=2u8 {
            if slot_level < level {
                out_slots.push((zero, [zero; 4]));
                continue;
            }
            let off = slot_offset(slot_level, age);
            let l_present = lp[off];
            let r_present = b.mul(has_right.target, rp[off]);
            let lh = &lp[off + 1..off + SLOT_LEN];
            let rh = &rp[off + 1..off + SLOT_LEN];
            if slot_level == level {
                let expected = if age == 1 { prev } else { x };
                for j in 0..4 {
                    for (present, h) in [(l_present, lh[j]), (r_present, rh[j])] {
                        let d = b.sub(h, expected[j]);
                        let m = b.mul(present, d);
                        b.assert_zero(m);
                    }
                }
                out_slots.push((zero, [zero; 4]));
            } else {
                let both = b.mul(l_present, r_present);
                let either = b.add(l_present, r_present);
                let present = b.sub(either, both);
                let mut hash_out = [zero; 4];
                for j in 0..4 {
                    let d = b.sub(lh[j], rh[j]);
                    let m = b.mul(both, d);
                    b.assert_zero(m);
                    let r = b.mul(r_present, rh[j]);
                    hash_out[j] = b.select(BoolTarget::new_unsafe(l_present), lh[j], r);
                }
                out_slots.push((present, hash_out));
            }
        }
    }

    b.register_public_input(index);
    b.register_public_input(checkpoint);
    b.register_public_inputs(&prev);
    b.register_public_inputs(&hash);
    for (present, h) in &out_slots {
        b.register_public_input(*present);
        b.register_public_inputs(h);
    }
    NodeCircuit {
        data: b.build::<C>(),
        left,
        right,
        index: index_target,
        x,
    }
}

impl RecursiveBackend {
    /// Builds the circuits for trees of `shape` (one leaf circuit, `depth` node circuits).
    pub fn new(shape: TreeShape) -> Self {
        let leaf = build_leaf(&shape);
        let mut nodes: Vec<NodeCircuit> = Vec::new();
        for level in 1..=shape.depth() {
            let child = nodes.last().map_or(&leaf.data, |n| &n.data);
            let circuit = build_node(&shape, level, child);
            nodes.push(circuit);
        }
        Self { shape, leaf, nodes }
    }

    fn circuit(&self, level: u8) -> Result<&CircuitData<F, C, D>, AggregatorError> {
        if level == 0 {
            return Ok(&self.leaf.data);
        }
        self.nodes
            .get(usize::from(level) - 1)
            .map(|n| &n.data)
            .ok_or(AggregatorError::NoSuchNode {
                level,
                index: 0,
                chains: self.shape.chains(),
            })
    }

    /// Decodes and verifies a proof of the level-`level` circuit from its wire encoding.
    pub fn decode_proof(&self, level: u8, bytes: &[u8]) -> Result<RecursiveProof, AggregatorError> {
        let data = self.circuit(level)?;
        let proof = Proof::from_bytes(bytes.to_vec(), &data.common).map_err(|e| {
            AggregatorError::MalformedProof {
                reason: e.to_string(),
            }
        })?;
        if proof.public_inputs.len() != data.common.num_public_inputs {
            return Err(AggregatorError::MalformedProof {
                reason: "wrong number of public inputs".into(),
            });
        }
        let proof = RecursiveProof { level, proof };
        self.verify(&proof)?;
        Ok(proof)
    }

    /// Degree (log2 of the number of rows) of the leaf circuit and of each level's circuit.
    pub fn degree_bits(&self) -> Vec<usize> {
        std::iter::once(&self.leaf.data)
            .chain(self.nodes.iter().map(|n| &n.data))
            .map(|d| d.common.degree_bits())
            .collect()
    }

    fn statement(&self, proof: &RecursiveProof) -> Result<NodeStatement, AggregatorError> {
        let pis = &proof.proof.public_inputs;
        let malformed = || AggregatorError::MalformedProof {
            reason: "public inputs out of range".into(),
        };
        let get = |i: usize| {
            pis.get(i)
                .map(|x| x.to_canonical_u64())
                .ok_or_else(malformed)
        };
        let digest = |at: usize| pis.get(at..at + 4).map(digest_bytes).ok_or_else(malformed);
        let mut exports = Vec::new();
        for level in 1..=self.shape.depth() {
            for age in 1..=2u8 {
                let off = slot_offset(level, age);
                match get(off)? {
                    0 => {}
                    1 => exports.push(Export {
                        level,
                        age,
                        hash: digest(off + 1)?,
                    }),
                    _ => return Err(malformed()),
                }
            }
        }
        Ok(NodeStatement {
            node: NodeId::new(
                proof.level,
                u32::try_from(get(PI_INDEX)?).map_err(|_| malformed())?,
            ),
            checkpoint: get(PI_CHECKPOINT)?,
            prev_hash: digest(PI_PREV)?,
            hash: digest(PI_HASH)?,
            exports,
        })
    }
}

impl TreeVerifier for RecursiveBackend {
    type Proof = RecursiveProof;
    type Hasher = PoseidonHasher;

    fn shape(&self) -> TreeShape {
        self.shape
    }
    fn hasher(&self) -> PoseidonHasher {
        PoseidonHasher
    }
    fn verify(&self, proof: &RecursiveProof) -> Result<NodeStatement, AggregatorError> {
        self.circuit(proof.level)?
            .verify(proof.proof.clone())
            .map_err(recursive_err)?;
        self.statement(proof)
    }
    fn proof_size_bytes(&self, proof: &RecursiveProof) -> usize {
        proof.proof.to_bytes().len()
    }
}

impl TreeProver for RecursiveBackend {
    fn prove_leaf(&self, leaf: &LeafInput) -> Result<RecursiveProof, AggregatorError> {
        // form of the imports (ancestors, window, canonical digests); see the crate docs
        let statement = leaf_statement(&PoseidonHasher, &self.shape, leaf)?;
        let c = &self.leaf;
        let mut pw = PartialWitness::new();
        pw.set_target(c.index, F::from_canonical_u32(leaf.chain))
            .map_err(recursive_err)?;
        pw.set_target(c.checkpoint, F::from_canonical_u64(leaf.checkpoint))
            .map_err(recursive_err)?;
        pw.set_target_arr(&c.prev_limbs, &limbs(leaf.prev_block_hash))
            .map_err(recursive_err)?;
        pw.set_target_arr(&c.limbs, &limbs(leaf.block_hash))
            .map_err(recursive_err)?;
        for (key, slot) in &c.slots {
            let export = statement.exports.iter().find(|e| (e.level, e.age) == *key);
            pw.set_bool_target(slot.present, export.is_some())
                .map_err(recursive_err)?;
            let hash = match export {
                Some(e) => digest_elements(e.hash)?,
                None => [F::ZERO; 4],
            };
            pw.set_target_arr(&slot.hash, &hash)
                .map_err(recursive_err)?;
        }
        let proof = c.data.prove(pw).map_err(recursive_err)?;
        let proof = RecursiveProof { level: 0, proof };
        self.verify(&proof)?;
        Ok(proof)
    }

    /// Proves `node` with its circuit. The imports are not pre-checked here: a wrong one leaves
    /// the circuit unsatisfiable ([`AggregatorError::Recursive`]); the aggregator checks the
    /// reference rules before proving ([`crate::AggregatorState::aggregate`]).
    fn prove_node(
        &self,
        node: NodeId,
        left: &RecursiveProof,
        right: Option<&RecursiveProof>,
        prev_prev_hash: B256,
    ) -> Result<RecursiveProof, AggregatorError> {
        self.shape.check_node(node)?;
        if self.shape.has_right(node) != right.is_some() {
            return Err(AggregatorError::WrongChildCount {
                level: node.level,
                index: node.index,
                expected: if self.shape.has_right(node) { 2 } else { 1 },
            });
        }
        for child in std::iter::once(left).chain(right) {
            if child.level.checked_add(1) != Some(node.level) {
                return Err(AggregatorError::WrongChild {
                    level: node.level - 1,
                    index: node.index * 2,
                    got_level: child.level,
                    got_index: self.statement(child).map_or(0, |s| s.node.index),
                });
            }
        }
        let c = self
            .nodes
            .get(usize::from(node.level) - 1)
            .ok_or(AggregatorError::NoSuchNode {
                level: node.level,
                index: node.index,
                chains: self.shape.chains(),
            })?;
        let mut pw = PartialWitness::new();
        pw.set_proof_with_pis_target(&c.left, &left.proof)
            .map_err(recursive_err)?;
        // a one-child node verifies its left child twice and ignores the copy
        pw.set_proof_with_pis_target(&c.right, &right.unwrap_or(left).proof)
            .map_err(recursive_err)?;
        if let Some(index) = c.index {
            pw.set_target(index, F::from_canonical_u32(node.index))
                .map_err(recursive_err)?;
        }
        pw.set_target_arr(&c.x, &digest_elements(prev_prev_hash)?)
            .map_err(recursive_err)?;
        let proof = c.data.prove(pw).map_err(recursive_err)?;
        let proof = RecursiveProof {
            level: node.level,
            proof,
        };
        // unsatisfied gate constraints do not stop the prover: the proof then fails here
        self.verify(&proof)?;
        Ok(proof)
    }
}
