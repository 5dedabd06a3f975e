//! The reference semantics of leaves and nodes: statement computation, export merging and
//! settlement. The re-execution backend is exactly this; the recursive backend's circuits
//! implement the same rules and the aggregator uses this to refuse bad input before proving.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

use crate::{
    AggregatorError, Export, LeafInput, NodeId, NodeStatement, TreeHasher, TreeShape,
    MAX_CHECKPOINT, MAX_IMPORTS_PER_LEAF,
};

/// The exports of a leaf's imports, keyed by `(level, age)`, after checking each import's form.
fn leaf_export_map<H: TreeHasher>(
    hasher: &H,
    shape: &TreeShape,
    leaf: &LeafInput,
) -> Result<BTreeMap<(u8, u8), B256>, AggregatorError> {
    if leaf.chain >= shape.chains() {
        return Err(AggregatorError::NoSuchNode {
            level: 0,
            index: leaf.chain,
            chains: shape.chains(),
        });
    }
    if leaf.checkpoint == 0 || leaf.checkpoint > MAX_CHECKPOINT {
        return Err(AggregatorError::CheckpointOutOfRange(leaf.checkpoint));
    }
    if leaf.imports.len() > MAX_IMPORTS_PER_LEAF {
        return Err(AggregatorError::TooManyImports {
            chain: leaf.chain,
            count: leaf.imports.len(),
        });
    }
    let mut exports = BTreeMap::new();
    for import in &leaf.imports {
        if shape.ancestor(leaf.chain, import.node.level) != Some(import.node) {
            return Err(AggregatorError::NotAnAncestor {
                chain: leaf.chain,
                level: import.node.level,
                index: import.node.index,
            });
        }
        let age = leaf
            .checkpoint
            .checked_sub(import.checkpoint)
            .filter(|age| *age == 1 || *age == 2)
            .ok_or(AggregatorError::ImportOutOfWindow {
                checkpoint: leaf.checkpoint,
                imported: import.checkpoint,
            })? as u8;
        hasher.check_digest(import.hash)?;
        insert_export(
            &mut exports,
            Export {
                level: import.node.level,
                age,
                hash: import.hash,
            },
        )?;
    }
    Ok(exports)
}

fn insert_export(
    map: &mut BTreeMap<(u8, u8), B256>,
    export: Export,
) -> Result<(), AggregatorError> {
    match map.insert((export.level, export.age), export.hash) {
        Some(other) if other != export.hash => Err(AggregatorError::ConflictingExports {
            level: export.level,
            age: export.age,
            a: other,
            b: export.hash,
        }),
        _ => Ok(()),
    }
}

fn to_exports(map: BTreeMap<(u8, u8), B256>) -> Vec<Export> {
    map.into_iter()
        .map(|((level, age), hash)| Export { level, age, hash })
        .collect()
}

/// The statement a leaf proof of `leaf` proves: leaf hashes of the two block hashes and the
/// exports of its imports. Refuses imports of non-ancestors, of checkpoints outside
/// `{i-1, i-2}`, and conflicting imports.
pub fn leaf_statement<H: TreeHasher>(
    hasher: &H,
    shape: &TreeShape,
    leaf: &LeafInput,
) -> Result<NodeStatement, AggregatorError> {
    let exports = leaf_export_map(hasher, shape, leaf)?;
    Ok(NodeStatement {
        node: NodeId::new(0, leaf.chain),
        checkpoint: leaf.checkpoint,
        prev_hash: hasher.leaf_hash(leaf.chain, leaf.prev_block_hash),
        hash: hasher.leaf_hash(leaf.chain, leaf.block_hash),
        exports: to_exports(exports),
    })
}

/// The statement node `node` proves from its children's statements and its hash two checkpoints
/// back: recomputes both hashes, merges the children's exports and settles those of its level.
pub fn node_statement<H: TreeHasher>(
    hasher: &H,
    shape: &TreeShape,
    node: NodeId,
    left: &NodeStatement,
    right: Option<&NodeStatement>,
    prev_prev_hash: B256,
) -> Result<NodeStatement, AggregatorError> {
    shape.check_node(node)?;
    let child = |offset: u32, got: NodeId| {
        let want = NodeId::new(node.level - 1, node.index * 2 + offset);
        if got == want {
            Ok(())
        } else {
            Err(AggregatorError::WrongChild {
                level: want.level,
                index: want.index,
                got_level: got.level,
                got_index: got.index,
            })
        }
    };
    child(0, left.node)?;
    if shape.has_right(node) != right.is_some() {
        return Err(AggregatorError::WrongChildCount {
            level: node.level,
            index: node.index,
            expected: if shape.has_right(node) { 2 } else { 1 },
        });
    }
    if let Some(r) = right {
        child(1, r.node)?;
        if r.checkpoint != left.checkpoint {
            return Err(AggregatorError::WrongCheckpoint {
                expected: left.checkpoint,
                got: r.checkpoint,
            });
        }
    }
    hasher.check_digest(prev_prev_hash)?;
    let prev_hash = hasher.node_hash(
        node,
        left.prev_hash,
        right.map(|r| r.prev_hash),
        prev_prev_hash,
    )?;
    let hash = hasher.node_hash(node, left.hash, right.map(|r| r.hash), prev_hash)?;

    let mut merged = BTreeMap::new();
    for export in left
        .exports
        .iter()
        .chain(right.iter().flat_map(|r| &r.exports))
    {
        if export.level < node.level
            || export.level > shape.depth()
            || !(1..=2).contains(&export.age)
        {
            return Err(AggregatorError::UnsettledExport {
                level: export.level,
                at: node.level,
            });
        }
        insert_export(&mut merged, *export)?;
    }
    for age in [1u8, 2] {
        if let Some(imported) = merged.remove(&(node.level, age)) {
            let actual = if age == 1 { prev_hash } else { prev_prev_hash };
            if imported != actual {
                return Err(AggregatorError::ImportMismatch {
                    level: node.level,
                    index: node.index,
                    checkpoint: left.checkpoint.saturating_sub(u64::from(age)),
                    imported,
                    actual,
                });
            }
        }
    }
    Ok(NodeStatement {
        node,
        checkpoint: left.checkpoint,
        prev_hash,
        hash,
        exports: to_exports(merged),
    })
}

/// Exported hashes per proof at one level of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelExportStats {
    /// The level (0 = leaf proofs).
    pub level: u8,
    /// Proofs at this level.
    pub proofs: u32,
    /// Most exported hashes in one proof of this level.
    pub max: usize,
    /// Exported hashes summed over the level's proofs.
    pub total: usize,
}

/// Measures how many hashes each proof exports, level by level, when the chains' statements are
/// `leaves` (one per chain, in chain order). Counts distinct `(level, age)` keys, which is what a
/// valid tree exports (equal claims merge); import form is checked as for proving.
pub fn export_stats(
    shape: &TreeShape,
    leaves: &[LeafInput],
) -> Result<Vec<LevelExportStats>, AggregatorError> {
    if leaves.len() != shape.chains() as usize
        || leaves.iter().zip(0u32..).any(|(l, c)| l.chain != c)
    {
        return Err(AggregatorError::WrongLeaves {
            expected: shape.chains() as usize,
            got: leaves.len(),
        });
    }
    let mut level: Vec<BTreeSet<(u8, u8)>> = leaves
        .iter()
        .map(|leaf| {
            leaf_export_map(&crate::KeccakHasher, shape, leaf)
                .map(|m| m.into_keys().collect::<BTreeSet<_>>())
        })
        .collect::<Result<_, _>>()?;
    let stats = |l: u8, sets: &[BTreeSet<(u8, u8)>]| LevelExportStats {
        level: l,
        proofs: sets.len() as u32,
        max: sets.iter().map(BTreeSet::len).max().unwrap_or(0),
        total: sets.iter().map(BTreeSet::len).sum(),
    };
    let mut out = vec![stats(0, &level)];
    for l in 1..=shape.depth() {
        level = level
            .chunks(2)
            .map(|pair| {
                pair.iter()
                    .flatten()
                    .copied()
                    .filter(|(lv, _)| *lv != l)
                    .collect()
            })
            .collect();
        out.push(stats(l, &level));
    }
    Ok(out)
}
