//! The keccak256 aggregation tree of seed 001, as far as chains and the settlement layer need it:
//! leaf and node hashes, the tree's shape arithmetic, and [`AggregatedPath`], the evidence that a
//! source block sits under an imported tree node hash (what an `aggregated` message proof
//! carries). The tree itself, its proofs and its backends are in `braid-aggregator`, whose
//! keccak hasher is these functions.
//!
//! Shape: `chains` leaves in fixed order; level `l` has `ceil(chains / 2^l)` nodes; node
//! `(l, k)` has children `(l-1, 2k)` and, if it exists, `(l-1, 2k+1)`; the root is at level
//! `max(1, ceil(log2 chains))`. A node's hash at checkpoint `i` covers its children's hashes at
//! `i` and its own hash at `i-1` (`prev`).

use alloy_primitives::{keccak256, B256};
use alloy_sol_types::{sol, SolValue};

use crate::{
    decode_canonical, BlockHeader, BlockNumber, ChainId, ImportKind, ImportedRoot, PrimitivesError,
};

sol! {
    /// A leaf of the aggregation tree: a chain's block hash at a checkpoint.
    struct AggregatorLeaf {
        uint32 chain;
        bytes32 blockHash;
    }
    /// A node of the aggregation tree at a checkpoint: its children's hashes (`right` zero and
    /// `hasRight` false for a one-child node) and its own hash at the previous checkpoint.
    struct AggregatorNode {
        uint8 level;
        uint32 index;
        bytes32 left;
        bytes32 right;
        bool hasRight;
        bytes32 prev;
    }
}

/// ABI words of an encoded [`BlockHeader`] (every field is static).
pub const HEADER_WORDS: usize = 15;
/// Most chains one tree aggregates (depth at most 16).
pub const MAX_TREE_CHAINS: u32 = 1 << 16;

/// `keccak256(abi.encode(AggregatorLeaf))`: the leaf of chain `chain` whose block hash at the
/// checkpoint is `block_hash`.
pub fn leaf_hash(chain: u32, block_hash: B256) -> B256 {
    keccak256(
        AggregatorLeaf {
            chain,
            blockHash: block_hash,
        }
        .abi_encode(),
    )
}

/// `keccak256(abi.encode(AggregatorNode))`: node `(level, index)` from its children's hashes and
/// its own previous hash.
pub fn node_hash(level: u8, index: u32, left: B256, right: Option<B256>, prev: B256) -> B256 {
    keccak256(
        AggregatorNode {
            level,
            index,
            left,
            right: right.unwrap_or_default(),
            hasRight: right.is_some(),
            prev,
        }
        .abi_encode(),
    )
}

/// Level of the root of a tree over `chains` chains: `max(1, ceil(log2 chains))`.
pub fn tree_depth(chains: u32) -> u8 {
    let bits = u32::BITS - chains.saturating_sub(1).leading_zeros();
    bits.max(1) as u8
}

/// Nodes at `level` of a tree over `chains` chains (`ceil(chains / 2^level)`, 0 above the root).
pub fn tree_nodes_at(chains: u32, level: u8) -> u32 {
    if level > tree_depth(chains) {
        return 0;
    }
    chains.div_ceil(1u32 << level)
}

/// Whether node `(level, index)` (level >= 1) of a tree over `chains` chains has a right child.
pub fn tree_has_right(chains: u32, level: u8, index: u32) -> bool {
    level >= 1
        && index
            .checked_mul(2)
            .and_then(|i| i.checked_add(1))
            .is_some_and(|r| r < tree_nodes_at(chains, level - 1))
}

/// The lowest level whose node is an ancestor of both leaves `a` and `b` (at least 1).
pub fn common_ancestor_level(a: u32, b: u32) -> u8 {
    let differing = u32::BITS - (a ^ b).leading_zeros();
    differing.max(1) as u8
}

/// The leaf position of `chain` in a tree over `chains` (in tree order).
pub fn tree_position(chains: &[ChainId], chain: ChainId) -> Option<u32> {
    chains
        .iter()
        .position(|c| *c == chain)
        .and_then(|p| u32::try_from(p).ok())
}

/// Whether `import`, an `aggregated` import by the chain at tree position `importer`, is void
/// once the chain at position `source` reverted its blocks from `first_block` on: the imported
/// node is above `source` and its checkpoint (or an earlier one, which the node's hash chains
/// through `prev`) covers a void block, so no tree will ever settle it.
pub fn import_voided_by(
    importer: u32,
    import: &ImportedRoot,
    source: u32,
    checkpoint_blocks: u64,
    first_block: BlockNumber,
) -> bool {
    if import.kind != ImportKind::Aggregated as u8 || import.sourceChain != 0 {
        return false;
    }
    let Ok(level) = u32::try_from(import.messageCount) else {
        return false;
    };
    (1..u32::BITS).contains(&level)
        && (importer >> level) == (source >> level)
        && import
            .sourceHeight
            .checked_mul(checkpoint_blocks)
            .is_none_or(|b| b >= first_block)
}

/// One level of an [`AggregatedPath`], from the leaf upwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PathStep {
    /// The sibling below this level's ancestor: the sibling chain's block hash at level 1, a
    /// node hash above; `None` where the ancestor has one child.
    pub sibling: Option<B256>,
    /// The ancestor's own hash at the previous checkpoint.
    pub prev: B256,
}

/// Evidence that block `header` of the chain at tree position `chain` is under a node of the
/// aggregation tree over `chains` chains: climbing `steps` from the leaf gives the hash of the
/// ancestor at level `steps.len()` at the header's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AggregatedPath {
    /// The source's position in the tree.
    pub chain: u32,
    /// Chains in the tree.
    pub chains: u32,
    /// The source's block at the checkpoint.
    pub header: BlockHeader,
    /// One step per level, `1..=level`.
    pub steps: Vec<PathStep>,
}

impl AggregatedPath {
    /// The level of the node the path climbs to.
    pub fn level(&self) -> u8 {
        self.steps.len().min(usize::from(u8::MAX)) as u8
    }

    /// Climbs the path: the hash of the ancestor at [`AggregatedPath::level`].
    pub fn node_hash(&self) -> Result<B256, PrimitivesError> {
        let bad = |reason: String| PrimitivesError::MalformedAbi {
            what: "AggregatedPath",
            reason,
        };
        if self.chains == 0 || self.chains > MAX_TREE_CHAINS || self.chain >= self.chains {
            return Err(bad(format!(
                "position {} in a tree over {} chains",
                self.chain, self.chains
            )));
        }
        if self.steps.is_empty() || self.steps.len() > usize::from(tree_depth(self.chains)) {
            return Err(bad(format!(
                "{} levels in a tree of depth {}",
                self.steps.len(),
                tree_depth(self.chains)
            )));
        }
        let mut hash = leaf_hash(self.chain, self.header.hash());
        for (step, level) in self.steps.iter().zip(1u8..) {
            let index = self.chain >> level;
            let is_left = (self.chain >> (level - 1)) & 1 == 0;
            let sibling = match (step.sibling, level) {
                (Some(block), 1) => Some(leaf_hash(self.chain ^ 1, block)),
                (s, _) => s,
            };
            let (left, right) = if is_left {
                if sibling.is_some() != tree_has_right(self.chains, level, index) {
                    return Err(bad(format!(
                        "sibling at level {level} does not fit the tree"
                    )));
                }
                (hash, sibling)
            } else {
                let left =
                    sibling.ok_or_else(|| bad(format!("missing sibling at level {level}")))?;
                (left, Some(hash))
            };
            hash = node_hash(level, index, left, right, step.prev);
        }
        Ok(hash)
    }

    /// The `outerSiblings` words of a message proof: the header's ABI words, then per level the
    /// sibling (zero where there is none) and the previous hash.
    pub fn to_words(&self) -> Vec<B256> {
        let encoded = self.header.abi_encode();
        let mut words: Vec<B256> = encoded.chunks(32).map(B256::from_slice).collect();
        for step in &self.steps {
            words.push(step.sibling.unwrap_or_default());
            words.push(step.prev);
        }
        words
    }

    /// Decodes [`AggregatedPath::to_words`] for position `chain` in a tree over `chains`
    /// chains. Whether a zero word is a missing sibling follows from the tree's shape.
    pub fn from_words(chain: u32, chains: u32, words: &[B256]) -> Result<Self, PrimitivesError> {
        let bad = |reason: &str| PrimitivesError::MalformedAbi {
            what: "AggregatedPath",
            reason: reason.into(),
        };
        if words.len() < HEADER_WORDS || !(words.len() - HEADER_WORDS).is_multiple_of(2) {
            return Err(bad("expected 15 header words and two words per level"));
        }
        let bytes: Vec<u8> = words[..HEADER_WORDS].iter().flat_map(|w| w.0).collect();
        let header: BlockHeader = decode_canonical(&bytes, "BlockHeader")?;
        if (words.len() - HEADER_WORDS) / 2 > usize::from(tree_depth(MAX_TREE_CHAINS)) {
            return Err(bad("more levels than any tree has"));
        }
        let mut steps = Vec::new();
        for (pair, level) in words[HEADER_WORDS..].chunks(2).zip(1u8..) {
            let is_left = (chain >> (level - 1)) & 1 == 0;
            let present = !is_left || tree_has_right(chains, level, chain >> level);
            if !present && pair[0] != B256::ZERO {
                return Err(bad("a sibling word where the tree has no sibling"));
            }
            steps.push(PathStep {
                sibling: present.then_some(pair[0]),
                prev: pair[1],
            });
        }
        Ok(Self {
            chain,
            chains,
            header,
            steps,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn shape_arithmetic() {
        assert_eq!(tree_depth(1), 1);
        assert_eq!(tree_depth(2), 1);
        assert_eq!(tree_depth(3), 2);
        assert_eq!(tree_depth(100), 7);
        assert_eq!(tree_nodes_at(5, 1), 3);
        assert!(tree_has_right(5, 1, 1));
        assert!(!tree_has_right(5, 1, 2));
        assert_eq!(common_ancestor_level(0, 1), 1);
        assert_eq!(common_ancestor_level(1, 2), 2);
        assert_eq!(common_ancestor_level(3, 3), 1);
        assert_eq!(common_ancestor_level(0, 4), 3);
    }

    fn header(chain: u64) -> BlockHeader {
        BlockHeader {
            chainId: chain,
            number: 8,
            parentHash: B256::repeat_byte(9),
            timestampMs: 8_000,
            sequencer: alloy_primitives::Address::repeat_byte(4),
            txRoot: B256::repeat_byte(5),
            stateRoot: B256::repeat_byte(6),
            localRoot: B256::repeat_byte(7),
            messageCount: 3,
            importsHash: B256::repeat_byte(8),
            depositsHash: B256::repeat_byte(10),
            depositCount: 0,
            gasUsed: 21_000,
            gasLimit: 30_000_000,
            baseFee: 1_000_000_000,
        }
    }

    #[test]
    fn path_words_round_trip_and_any_change_moves_the_hash() {
        // chain 2 of 3: level 1 node (1,1) has one child, level 2 is the root
        let path = AggregatedPath {
            chain: 2,
            chains: 3,
            header: header(12),
            steps: vec![
                PathStep {
                    sibling: None,
                    prev: B256::repeat_byte(1),
                },
                PathStep {
                    sibling: Some(B256::repeat_byte(2)),
                    prev: B256::repeat_byte(3),
                },
            ],
        };
        let hash = path.node_hash().unwrap();
        let words = path.to_words();
        let back = AggregatedPath::from_words(2, 3, &words).unwrap();
        assert_eq!(back, path);
        for i in 0..words.len() {
            let mut tampered = words.clone();
            tampered[i].0[31] ^= 1;
            let moved =
                AggregatedPath::from_words(2, 3, &tampered).and_then(|p| p.node_hash()) != Ok(hash);
            assert!(moved, "word {i} did not bind");
        }
        assert!(AggregatedPath::from_words(3, 3, &words)
            .and_then(|p| p.node_hash())
            .is_err());
        assert!(AggregatedPath::from_words(2, 3, &words[..18]).is_err());
    }

    /// Every node hash of a tree over `blocks.len()` chains at one checkpoint, with the given
    /// previous hashes: `levels[l - 1][k]` = node `(l, k)`.
    fn tree(blocks: &[BlockHeader], prev: &[Vec<B256>]) -> Vec<Vec<B256>> {
        let n = blocks.len() as u32;
        let mut below: Vec<B256> = blocks
            .iter()
            .zip(0u32..)
            .map(|(h, c)| leaf_hash(c, h.hash()))
            .collect();
        let mut levels = Vec::new();
        for level in 1..=tree_depth(n) {
            let row: Vec<B256> = (0..tree_nodes_at(n, level))
                .map(|k| {
                    let left = below[2 * k as usize];
                    let right = below.get(2 * k as usize + 1).copied();
                    node_hash(level, k, left, right, prev[level as usize - 1][k as usize])
                })
                .collect();
            levels.push(row.clone());
            below = row;
        }
        levels
    }

    fn path_in(
        blocks: &[BlockHeader],
        prev: &[Vec<B256>],
        levels: &[Vec<B256>],
        chain: u32,
        level: u8,
    ) -> AggregatedPath {
        let n = blocks.len() as u32;
        let steps = (1..=level)
            .map(|l| {
                let sibling_index = (chain >> (l - 1)) ^ 1;
                let sibling = if l == 1 {
                    blocks.get(sibling_index as usize).map(|h| h.hash())
                } else {
                    levels[l as usize - 2].get(sibling_index as usize).copied()
                };
                PathStep {
                    sibling,
                    prev: prev[l as usize - 1][(chain >> l) as usize],
                }
            })
            .collect();
        AggregatedPath {
            chain,
            chains: n,
            header: blocks[chain as usize].clone(),
            steps,
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// A path built from a real tree climbs to the ancestor's hash at every level; changing
        /// any word of its encoding (or its position or tree size) breaks it.
        #[test]
        fn paths_verify_and_any_tampering_fails(
            n in 1u32..24,
            pick in 0u32..1_000,
            level_pick in 0u8..8,
            seed in proptest::prelude::any::<u64>(),
            word_pick in 0usize..1_000,
            bit in 0usize..256,
        ) {
            let byte = |i: u64| B256::from(keccak256((seed, i).abi_encode()));
            let blocks: Vec<BlockHeader> = (0..n)
                .map(|c| {
                    let mut h = header(900 + u64::from(c));
                    h.stateRoot = byte(u64::from(c));
                    h
                })
                .collect();
            let prev: Vec<Vec<B256>> = (1..=tree_depth(n))
                .map(|l| (0..tree_nodes_at(n, l)).map(|k| byte(1_000 + u64::from(l) * 100 + u64::from(k))).collect())
                .collect();
            let levels = tree(&blocks, &prev);
            let chain = pick % n;
            let level = 1 + level_pick % tree_depth(n);
            let path = path_in(&blocks, &prev, &levels, chain, level);
            let expected = levels[level as usize - 1][(chain >> level) as usize];
            proptest::prop_assert_eq!(path.node_hash().unwrap(), expected);
            let words = path.to_words();
            let decoded = AggregatedPath::from_words(chain, n, &words).unwrap();
            proptest::prop_assert_eq!(decoded.node_hash().unwrap(), expected);

            let mut tampered = words.clone();
            let w = word_pick % tampered.len();
            tampered[w].0[bit / 8] ^= 1 << (bit % 8);
            let ok = AggregatedPath::from_words(chain, n, &tampered)
                .and_then(|p| p.node_hash())
                .is_ok_and(|h| h == expected);
            proptest::prop_assert!(!ok, "tampered word {} still verifies", w);
            if n > 1 {
                let other = (chain + 1) % n;
                let moved = AggregatedPath::from_words(other, n, &words)
                    .and_then(|p| p.node_hash())
                    .is_ok_and(|h| h == expected);
                proptest::prop_assert!(!moved, "the path verifies for another position");
            }
        }
    }
}
