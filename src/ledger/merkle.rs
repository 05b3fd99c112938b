//! The RFC 6962 / RFC 9162 section 2.1 Merkle tree: roots, inclusion and
//! consistency proofs built from the hashes of complete subtrees, their
//! verification, and an in-memory accumulator.
//!
//! A node `(level, index)` is the root of the complete subtree over leaves
//! `[index·2^level, (index+1)·2^level)`; level 0 holds the leaf hashes. Every
//! range a proof needs starts on such a boundary, so any proof reads
//! O(log n) nodes.

pub use super::hash::Hash;
use sha2::{Digest, Sha256};

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// HASH(0x00 ‖ data).
pub fn hash_leaf(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(data);
    hasher.finalize().into()
}

/// HASH(0x01 ‖ left ‖ right).
pub fn hash_children(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// Where complete-subtree hashes come from (a database, memory).
pub trait Nodes {
    type Error;
    fn node(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// MTH of leaves `[start, start + len)`, where `start` is a multiple of the
/// largest power of two not above `len` (true for every range of RFC 9162's
/// recursions).
fn range_root<N: Nodes>(nodes: &mut N, start: u64, len: u64) -> Result<Hash, N::Error> {
    debug_assert!(len >= 1);
    if len.is_power_of_two() {
        let level = len.trailing_zeros();
        return nodes.node(level, start >> level);
    }
    let k = split_point(len);
    let left = range_root(nodes, start, k)?;
    let right = range_root(nodes, start + k, len - k)?;
    Ok(hash_children(&left, &right))
}

/// The root of the first `size` leaves.
pub fn root<N: Nodes>(nodes: &mut N, size: u64) -> Result<Hash, N::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_root(nodes, 0, size)
}

/// PATH(index, D[0:size]) of RFC 9162 2.1.3.1. Requires index < size.
pub fn inclusion_proof<N: Nodes>(
    nodes: &mut N,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, N::Error> {
    debug_assert!(index < size);
    let mut proof = Vec::new();
    // Walk down from the whole tree, collecting siblings, then reverse.
    let (mut start, mut len, mut m) = (0u64, size, index);
    while len > 1 {
        let k = split_point(len);
        if m < k {
            proof.push(range_root(nodes, start + k, len - k)?);
            len = k;
        } else {
            proof.push(range_root(nodes, start, k)?);
            start += k;
            m -= k;
            len -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// PROOF(from, D[0:to]) of RFC 9162 2.1.4.1; empty when from is 0 or equal to to.
pub fn consistency_proof<N: Nodes>(
    nodes: &mut N,
    from: u64,
    to: u64,
) -> Result<Vec<Hash>, N::Error> {
    debug_assert!(from <= to);
    if from == 0 || from == to {
        return Ok(Vec::new());
    }
    let mut proof = Vec::new();
    let (mut start, mut len, mut m, mut whole) = (0u64, to, from, true);
    loop {
        if m == len {
            if !whole {
                proof.push(range_root(nodes, start, len)?);
            }
            break;
        }
        let k = split_point(len);
        if m <= k {
            proof.push(range_root(nodes, start + k, len - k)?);
            len = k;
        } else {
            proof.push(range_root(nodes, start, k)?);
            start += k;
            m -= k;
            len -= k;
            whole = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The nodes completed by appending leaf `index` with hash `leaf`: the leaf
/// itself at level 0 and every complete subtree it closes. Reads the left
/// siblings it needs.
pub fn nodes_completed_by<N: Nodes>(
    nodes: &mut N,
    index: u64,
    leaf: Hash,
) -> Result<Vec<(u32, u64, Hash)>, N::Error> {
    let mut out = vec![(0, index, leaf)];
    let (mut level, mut idx, mut hash) = (0u32, index, leaf);
    while idx & 1 == 1 {
        let left = nodes.node(level, idx - 1)?;
        hash = hash_children(&left, &hash);
        level += 1;
        idx >>= 1;
        out.push((level, idx, hash));
    }
    Ok(out)
}

/// RFC 9162 2.1.3.2: does `proof` show `leaf` at `index` in the tree of
/// `size` leaves with `root`?
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    root_from_inclusion(leaf, index, size, proof).is_some_and(|r| &r == root)
}

/// The root an inclusion proof leads to, or `None` if its shape is wrong.
pub fn root_from_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = hash_children(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = hash_children(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

/// RFC 9162 2.1.4.2: does `proof` show the tree of `to` leaves (`to_root`)
/// extends the tree of `from` leaves (`from_root`)?
pub fn verify_consistency(
    from: u64,
    to: u64,
    from_root: &Hash,
    to_root: &Hash,
    proof: &[Hash],
) -> bool {
    if from > to {
        return false;
    }
    if from == to {
        return proof.is_empty() && from_root == to_root;
    }
    if from == 0 {
        return proof.is_empty() && from_root == &empty_root();
    }
    if proof.is_empty() {
        return false;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if from.is_power_of_two() {
        path.push(*from_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (from - 1, to - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = hash_children(c, &fr);
            sr = hash_children(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = hash_children(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    &fr == from_root && &sr == to_root && s == 0
}

/// Appends leaves and tells the root at any size, keeping only the roots of
/// the complete subtrees on the right edge (O(log n) memory).
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    /// (level, hash), levels strictly decreasing.
    edge: Vec<(u32, Hash)>,
    size: u64,
}

impl Accumulator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut level = 0u32;
        let mut hash = leaf;
        while let Some(&(top_level, top)) = self.edge.last() {
            if top_level != level {
                break;
            }
            self.edge.pop();
            hash = hash_children(&top, &hash);
            level += 1;
        }
        self.edge.push((level, hash));
        self.size += 1;
    }

    pub fn root(&self) -> Hash {
        let mut iter = self.edge.iter().rev();
        match iter.next() {
            None => empty_root(),
            Some(&(_, last)) => iter.fold(last, |acc, (_, left)| hash_children(left, &acc)),
        }
    }
}

/// All nodes of a tree kept in memory (tests, small dossiers).
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    pub fn push(&mut self, leaf: Hash) {
        let index = self.size();
        let completed = nodes_completed_by(self, index, leaf).expect("memory reads cannot fail");
        for (level, _, hash) in completed {
            let level = level as usize;
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
        }
    }
}

/// A node that was never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("missing Merkle node at level {level}, index {index}")]
pub struct MissingNode {
    pub level: u32,
    pub index: u64,
}

impl Nodes for MemoryTree {
    type Error = MissingNode;
    fn node(&mut self, level: u32, index: u64) -> Result<Hash, MissingNode> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(index as usize))
            .copied()
            .ok_or(MissingNode { level, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook definition, for cross-checking.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                hash_children(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| hash_leaf(&(i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn roots_match_the_definition() {
        let all = leaves(70);
        let mut tree = MemoryTree::new();
        let mut acc = Accumulator::new();
        for (i, leaf) in all.iter().enumerate() {
            tree.push(*leaf);
            acc.push(*leaf);
            let size = i as u64 + 1;
            assert_eq!(root(&mut tree, size).unwrap(), mth(&all[..=i]));
            assert_eq!(acc.root(), mth(&all[..=i]));
            for earlier in [1, size / 2, size.saturating_sub(1)] {
                if earlier >= 1 {
                    assert_eq!(
                        root(&mut tree, earlier).unwrap(),
                        mth(&all[..earlier as usize])
                    );
                }
            }
        }
        assert_eq!(Accumulator::new().root(), empty_root());
    }

    #[test]
    fn proofs_verify_and_bad_shapes_fail() {
        let all = leaves(33);
        let mut tree = MemoryTree::new();
        all.iter().for_each(|l| tree.push(*l));
        for size in 1..=33u64 {
            let r = root(&mut tree, size).unwrap();
            for index in 0..size {
                let proof = inclusion_proof(&mut tree, index, size).unwrap();
                assert!(verify_inclusion(
                    &all[index as usize],
                    index,
                    size,
                    &proof,
                    &r
                ));
                if size < 33 {
                    // The same proof against the next tree (its true root) fails.
                    let next = root(&mut tree, size + 1).unwrap();
                    assert!(!verify_inclusion(
                        &all[index as usize],
                        index,
                        size + 1,
                        &proof,
                        &next
                    ));
                }
            }
            for from in 0..=size {
                let proof = consistency_proof(&mut tree, from, size).unwrap();
                let from_root = root(&mut tree, from).unwrap();
                assert!(
                    verify_consistency(from, size, &from_root, &r, &proof),
                    "{from}->{size}"
                );
            }
        }
        assert!(!verify_consistency(3, 2, &empty_root(), &empty_root(), &[]));
        assert!(!verify_inclusion(&all[0], 5, 5, &[], &all[0]));
    }
}
