//! Node hash functions: keccak256 over ABI-encoded structs (re-execution backend) and Poseidon
//! over Goldilocks (recursive backend, cheap in-circuit). Both give 32-byte hashes: a Poseidon
//! digest (4 field elements) is stored as its 4 canonical elements, big-endian, 8 bytes each.

use alloy_primitives::B256;
use braid_primitives::aggregation;
use plonky2::field::goldilocks_field::GoldilocksField;
use plonky2::field::types::{Field, Field64, PrimeField64};
use plonky2::hash::hash_types::HashOut;
use plonky2::hash::poseidon::PoseidonHash;
use plonky2::plonk::config::Hasher;

use crate::{AggregatorError, ChainIndex, NodeId};

/// The hash function of a tree's leaves and nodes.
pub trait TreeHasher {
    /// Errors unless `digest` is a value this hash function can output (and take as input).
    fn check_digest(&self, digest: B256) -> Result<(), AggregatorError>;
    /// The leaf hash of chain `chain` at a checkpoint where its block hash is `block_hash`.
    fn leaf_hash(&self, chain: ChainIndex, block_hash: B256) -> B256;
    /// The hash of `node` from its children's hashes (`right` is `None` for a one-child node)
    /// and its own previous hash.
    fn node_hash(
        &self,
        node: NodeId,
        left: B256,
        right: Option<B256>,
        prev: B256,
    ) -> Result<B256, AggregatorError>;
}

/// keccak256 hashes: leaf `keccak256(abi.encode(AggregatorLeaf))`, node
/// `keccak256(abi.encode(AggregatorNode))` (64 and 192 bytes of preimage, so never equal); the
/// functions are `braid_primitives::aggregation`'s, which the chains use to check `aggregated`
/// message proofs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeccakHasher;

impl TreeHasher for KeccakHasher {
    fn check_digest(&self, _digest: B256) -> Result<(), AggregatorError> {
        Ok(())
    }
    fn leaf_hash(&self, chain: ChainIndex, block_hash: B256) -> B256 {
        aggregation::leaf_hash(chain, block_hash)
    }
    fn node_hash(
        &self,
        node: NodeId,
        left: B256,
        right: Option<B256>,
        prev: B256,
    ) -> Result<B256, AggregatorError> {
        Ok(aggregation::node_hash(
            node.level, node.index, left, right, prev,
        ))
    }
}

pub(crate) type F = GoldilocksField;

/// Domain tag of leaf preimages.
pub(crate) const LEAF_TAG: u64 = 0;
/// Domain tag of node preimages.
pub(crate) const NODE_TAG: u64 = 1;

/// Poseidon (plonky2's, width 12, no padding) over Goldilocks:
/// leaf `Poseidon(0, chain, block_hash as 8 big-endian u32 limbs)`, node
/// `Poseidon(1, level, index, left[4], right[4] (zero if none), has_right, prev[4])`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoseidonHasher;

/// The 8 big-endian u32 limbs of a 32-byte value.
pub(crate) fn limbs(value: B256) -> [F; 8] {
    let mut out = [F::ZERO; 8];
    for (o, chunk) in out.iter_mut().zip(value.0.chunks_exact(4)) {
        let mut word = [0u8; 4];
        word.copy_from_slice(chunk);
        *o = F::from_canonical_u32(u32::from_be_bytes(word));
    }
    out
}

/// The 4 field elements of a canonical Poseidon digest.
pub(crate) fn digest_elements(value: B256) -> Result<[F; 4], AggregatorError> {
    let mut out = [F::ZERO; 4];
    for (o, chunk) in out.iter_mut().zip(value.0.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_be_bytes(word);
        if x >= F::ORDER {
            return Err(AggregatorError::NonCanonicalDigest(value));
        }
        *o = F::from_canonical_u64(x);
    }
    Ok(out)
}

/// The 32-byte form of 4 field elements.
pub(crate) fn digest_bytes(elements: &[F]) -> B256 {
    let mut out = [0u8; 32];
    for (chunk, e) in out.chunks_exact_mut(8).zip(elements) {
        chunk.copy_from_slice(&e.to_canonical_u64().to_be_bytes());
    }
    B256::from(out)
}

fn poseidon(inputs: &[F]) -> B256 {
    let HashOut { elements } = PoseidonHash::hash_no_pad(inputs);
    digest_bytes(&elements)
}

impl TreeHasher for PoseidonHasher {
    fn check_digest(&self, digest: B256) -> Result<(), AggregatorError> {
        digest_elements(digest).map(|_| ())
    }
    fn leaf_hash(&self, chain: ChainIndex, block_hash: B256) -> B256 {
        let mut inputs = vec![
            F::from_canonical_u64(LEAF_TAG),
            F::from_canonical_u32(chain),
        ];
        inputs.extend(limbs(block_hash));
        poseidon(&inputs)
    }
    fn node_hash(
        &self,
        node: NodeId,
        left: B256,
        right: Option<B256>,
        prev: B256,
    ) -> Result<B256, AggregatorError> {
        let mut inputs = vec![
            F::from_canonical_u64(NODE_TAG),
            F::from_canonical_u8(node.level),
            F::from_canonical_u32(node.index),
        ];
        inputs.extend(digest_elements(left)?);
        inputs.extend(match right {
            Some(r) => digest_elements(r)?,
            None => [F::ZERO; 4],
        });
        inputs.push(F::from_bool(right.is_some()));
        inputs.extend(digest_elements(prev)?);
        Ok(poseidon(&inputs))
    }
}
