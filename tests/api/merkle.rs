//! RFC 6962 / 9162 Merkle trees: the transparency-dev known answers, and
//! properties over random trees.

use consent_ledger::ledger::merkle::{self, Hash, MemoryTree};
use serde_json::Value;

use crate::helpers::hashes_of as hashes;

#[test]
fn known_answers_of_merkle_json() {
    let v: Value = serde_json::from_str(include_str!("../vectors/merkle.json")).unwrap();
    let leaves: Vec<Vec<u8>> = v["leaves_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| hex::decode(l.as_str().unwrap()).unwrap())
        .collect();
    let leaf_hashes = hashes(&v["leaf_hashes"]);
    let roots = hashes(&v["roots_by_size"]);
    assert_eq!(roots.len(), 9);
    let mut tree = MemoryTree::new();
    assert_eq!(merkle::root(&mut tree, 0).unwrap(), roots[0]);
    for (i, leaf) in leaves.iter().enumerate() {
        assert_eq!(merkle::hash_leaf(leaf), leaf_hashes[i], "leaf {i}");
        tree.push(leaf_hashes[i]);
    }
    for (size, root) in roots.iter().enumerate() {
        assert_eq!(
            &merkle::root(&mut tree, size as u64).unwrap(),
            root,
            "size {size}"
        );
    }
    let inclusion = v["inclusion"].as_array().unwrap();
    assert!(!inclusion.is_empty());
    for case in inclusion {
        let (index, size) = (
            case["leaf_index"].as_u64().unwrap(),
            case["tree_size"].as_u64().unwrap(),
        );
        let expected = hashes(&case["proof"]);
        assert_eq!(
            merkle::inclusion_proof(&mut tree, index, size).unwrap(),
            expected,
            "{index}/{size}"
        );
        assert!(merkle::verify_inclusion(
            &leaf_hashes[index as usize],
            index,
            size,
            &expected,
            &roots[size as usize]
        ));
    }
    let consistency = v["consistency"].as_array().unwrap();
    assert!(!consistency.is_empty());
    for case in consistency {
        let (from, to) = (
            case["size1"].as_u64().unwrap(),
            case["size2"].as_u64().unwrap(),
        );
        let expected = hashes(&case["proof"]);
        assert_eq!(
            merkle::consistency_proof(&mut tree, from, to).unwrap(),
            expected,
            "{from}->{to}"
        );
        assert!(merkle::verify_consistency(
            from,
            to,
            &roots[from as usize],
            &roots[to as usize],
            &expected
        ));
    }
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_tree(rng: &mut Rng, size: u64) -> (MemoryTree, Vec<Hash>) {
    let mut tree = MemoryTree::new();
    let mut leaves = Vec::new();
    for _ in 0..size {
        let leaf = merkle::hash_leaf(&rng.next().to_be_bytes());
        leaves.push(leaf);
        tree.push(leaf);
    }
    (tree, leaves)
}

fn flip(mut hash: Hash, rng: &mut Rng) -> Hash {
    hash[rng.below(32) as usize] ^= 1 << rng.below(8);
    hash
}

#[test]
fn every_inclusion_proof_verifies_and_any_change_fails() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..12 {
        let n = 1 + rng.below(300);
        let (mut tree, leaves) = random_tree(&mut rng, n);
        let mut sizes: Vec<u64> = (0..6).map(|_| 1 + rng.below(n)).collect();
        sizes.push(n);
        for size in sizes {
            let root = merkle::root(&mut tree, size).unwrap();
            for index in 0..size {
                let leaf = leaves[index as usize];
                let proof = merkle::inclusion_proof(&mut tree, index, size).unwrap();
                assert!(
                    merkle::verify_inclusion(&leaf, index, size, &proof, &root),
                    "{index}/{size}"
                );
                if !proof.is_empty() {
                    let mut bad = proof.clone();
                    let k = rng.below(bad.len() as u64) as usize;
                    bad[k] = flip(bad[k], &mut rng);
                    assert!(
                        !merkle::verify_inclusion(&leaf, index, size, &bad, &root),
                        "hash {k} of {index}/{size}"
                    );
                    let mut shorter = proof.clone();
                    shorter.pop();
                    assert!(!merkle::verify_inclusion(
                        &leaf, index, size, &shorter, &root
                    ));
                }
                let other = (index + 1 + rng.below(size)) % size;
                if other != index {
                    assert!(
                        !merkle::verify_inclusion(&leaf, other, size, &proof, &root),
                        "index {other} for {index}/{size}"
                    );
                }
                for changed in [size.wrapping_sub(1), size + 1] {
                    if changed > index && changed <= n && changed != size {
                        let true_root = merkle::root(&mut tree, changed).unwrap();
                        assert!(
                            !merkle::verify_inclusion(&leaf, index, changed, &proof, &true_root),
                            "size {changed} for {index}/{size}"
                        );
                    }
                }
                assert!(!merkle::verify_inclusion(
                    &flip(leaf, &mut rng),
                    index,
                    size,
                    &proof,
                    &root
                ));
            }
        }
    }
}

#[test]
fn every_consistency_proof_verifies_and_any_change_fails() {
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    for _ in 0..12 {
        let n = 2 + rng.below(300);
        let (mut tree, _) = random_tree(&mut rng, n);
        let roots: Vec<Hash> = (0..=n)
            .map(|s| merkle::root(&mut tree, s).unwrap())
            .collect();
        for _ in 0..300 {
            let to = 1 + rng.below(n);
            let from = 1 + rng.below(to);
            let proof = merkle::consistency_proof(&mut tree, from, to).unwrap();
            let (fr, tr) = (roots[from as usize], roots[to as usize]);
            assert!(
                merkle::verify_consistency(from, to, &fr, &tr, &proof),
                "{from}->{to}"
            );
            if from == to {
                assert!(proof.is_empty());
                continue;
            }
            let mut bad = proof.clone();
            let k = rng.below(bad.len() as u64) as usize;
            bad[k] = flip(bad[k], &mut rng);
            assert!(
                !merkle::verify_consistency(from, to, &fr, &tr, &bad),
                "hash {k} of {from}->{to}"
            );
            assert!(!merkle::verify_consistency(
                from,
                to,
                &flip(fr, &mut rng),
                &tr,
                &proof
            ));
            assert!(!merkle::verify_consistency(
                from,
                to,
                &fr,
                &flip(tr, &mut rng),
                &proof
            ));
            for (f2, t2) in [
                (from - 1, to),
                (from + 1, to),
                (from, to - 1),
                (from, to + 1),
            ] {
                if f2 >= 1 && f2 <= t2 && t2 <= n && (f2, t2) != (from, to) && f2 != t2 {
                    let ok = merkle::verify_consistency(
                        f2,
                        t2,
                        &roots[f2 as usize],
                        &roots[t2 as usize],
                        &proof,
                    );
                    assert!(!ok, "the proof {from}->{to} also passed as {f2}->{t2}");
                }
            }
        }
        // The empty tree is consistent with every tree, with an empty proof only.
        assert!(merkle::verify_consistency(
            0,
            n,
            &merkle::empty_root(),
            &roots[n as usize],
            &[]
        ));
        assert!(!merkle::verify_consistency(
            0,
            n,
            &merkle::empty_root(),
            &roots[n as usize],
            &[roots[1]]
        ));
    }
}
