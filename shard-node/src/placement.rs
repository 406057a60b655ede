//! Which nodes get which shares.
//!
//! [`Placement`] chooses distinct nodes for the shares of one chunk; [`WeightedByFree`] draws
//! them at random, weighted by free capacity, so fuller nodes get less and the shares of
//! successive chunks spread over all nodes.

use shard_proto::NodeId;

/// A node that can take shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The node.
    pub node: NodeId,
    /// Bytes it may still take (`None`: no quota known, only its disk limits it).
    pub free: Option<u64>,
}

/// Nodes that said they were full during one job (a put, a repair), whatever room they
/// claimed: no more shares are offered to them for the rest of it, so a peer lying about its
/// capacity costs one try per chunk in flight, not one per chunk.
#[derive(Debug, Default)]
pub struct FullNodes(std::sync::Mutex<std::collections::HashSet<NodeId>>);

impl FullNodes {
    /// Records that `node` refused a share for want of room.
    pub fn mark(&self, node: NodeId) {
        if let Ok(mut full) = self.0.lock() {
            full.insert(node);
        }
    }

    /// The nodes found full so far.
    pub fn list(&self) -> Vec<NodeId> {
        self.0
            .lock()
            .map(|f| f.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// Chooses nodes for shares.
pub trait Placement: Send + Sync {
    /// Up to `count` distinct nodes among `candidates`, none of them in `exclude`.
    fn choose(&self, candidates: &[Candidate], count: usize, exclude: &[NodeId]) -> Vec<NodeId>;
}

/// Weighted random choice without replacement; the weight is the free capacity.
pub struct WeightedByFree;

/// Weight of a node whose free space is unknown: as much as the roomiest known one, at least
/// 1 TiB.
fn weights(candidates: &[&Candidate]) -> Vec<f64> {
    let known_max = candidates.iter().filter_map(|c| c.free).max().unwrap_or(0);
    let default = (known_max.max(1 << 40)) as f64;
    candidates
        .iter()
        .map(|c| c.free.map_or(default, |f| f as f64).max(1.0))
        .collect()
}

fn random_unit() -> f64 {
    let bits = getrandom::u64().unwrap_or(0x9E37_79B9_7F4A_7C15) >> 11;
    bits as f64 / (1u64 << 53) as f64
}

impl Placement for WeightedByFree {
    fn choose(&self, candidates: &[Candidate], count: usize, exclude: &[NodeId]) -> Vec<NodeId> {
        let mut pool: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| !exclude.contains(&c.node))
            .collect();
        let mut chosen = Vec::with_capacity(count.min(pool.len()));
        while chosen.len() < count && !pool.is_empty() {
            let w = weights(&pool);
            let total: f64 = w.iter().sum();
            let mut pick = random_unit() * total;
            let mut index = pool.len() - 1;
            for (i, weight) in w.iter().enumerate() {
                if pick < *weight {
                    index = i;
                    break;
                }
                pick -= weight;
            }
            chosen.push(pool.swap_remove(index).node);
        }
        chosen
    }
}

/// The first eligible candidates, in the order given (this node first, then peers as they
/// connected): deterministic, for tests that need to know where shares go.
pub struct InOrder;

impl Placement for InOrder {
    fn choose(&self, candidates: &[Candidate], count: usize, exclude: &[NodeId]) -> Vec<NodeId> {
        candidates
            .iter()
            .filter(|c| !exclude.contains(&c.node))
            .take(count)
            .map(|c| c.node)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u8, free: Option<u64>) -> Candidate {
        Candidate {
            node: NodeId([i; 32]),
            free,
        }
    }

    #[test]
    fn chooses_distinct_nodes_and_respects_exclusions() {
        let candidates: Vec<Candidate> = (0..5).map(|i| node(i, None)).collect();
        for _ in 0..100 {
            let picked = WeightedByFree.choose(&candidates, 5, &[]);
            let mut sorted = picked.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 5);
            let some = WeightedByFree.choose(&candidates, 3, &[NodeId([0; 32])]);
            assert_eq!(some.len(), 3);
            assert!(!some.contains(&NodeId([0; 32])));
        }
        assert_eq!(
            WeightedByFree.choose(&candidates, 9, &[]).len(),
            5,
            "never more than exist"
        );
    }

    #[test]
    fn in_order_takes_the_first_eligible() {
        let candidates: Vec<Candidate> = (0..4).map(|i| node(i, None)).collect();
        assert_eq!(
            InOrder.choose(&candidates, 2, &[NodeId([0; 32])]),
            vec![NodeId([1; 32]), NodeId([2; 32])]
        );
        assert_eq!(InOrder.choose(&candidates, 9, &[]).len(), 4);
    }

    #[test]
    fn fuller_nodes_get_fewer_shares() {
        let candidates = [
            node(1, Some(1 << 30)),
            node(2, Some(9 << 30)),
            node(3, Some(10 << 30)),
        ];
        let mut counts = [0u32; 3];
        for _ in 0..4000 {
            let first = WeightedByFree.choose(&candidates, 1, &[])[0];
            counts[usize::from(first.0[0] - 1)] += 1;
        }
        // Expected shares of the draws: 5%, 45%, 50%.
        assert!(counts[0] < 400, "{counts:?}");
        assert!(counts[1] > 1500 && counts[2] > 1600, "{counts:?}");
    }
}
