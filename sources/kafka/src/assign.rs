//! Deterministic partition assignment: no consumer-group rebalances.

use millionx_dataflow::StreamKind;

/// One partition of one input topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The stream the topic carries.
    pub stream: StreamKind,
    /// Topic name.
    pub topic: String,
    /// Partition id.
    pub partition: i32,
}

/// Assigns every partition of `topics` (`(stream, topic, partition ids)`) to one of `workers` workers:
/// partitions are listed in stream order (social, market, weather) then by id, and the `k`-th goes to
/// worker `k % workers`. Every worker computes the same answer from the same metadata, so no group
/// coordination is needed, and partitions spread evenly even when each topic has a single partition.
/// Returns `(worker, partition)` pairs.
pub fn assignment(topics: &[(StreamKind, String, Vec<i32>)], workers: usize) -> Vec<(usize, TopicPartition)> {
    let mut all: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|(stream, topic, parts)| {
            parts.iter().map(move |p| TopicPartition { stream: *stream, topic: topic.clone(), partition: *p })
        })
        .collect();
    all.sort_by_key(|tp| (tp.stream, tp.partition));
    all.into_iter().enumerate().map(|(k, tp)| (k % workers.max(1), tp)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_exactly_once_spread_evenly() {
        let topics = vec![
            (StreamKind::Weather, "context.weather".to_owned(), vec![0]),
            (StreamKind::Social, "validated.social".to_owned(), vec![2, 0, 1]),
            (StreamKind::Market, "validated.market".to_owned(), vec![0, 1]),
        ];
        let a = assignment(&topics, 2);
        let names: Vec<(usize, &str, i32)> = a.iter().map(|(w, tp)| (*w, tp.topic.as_str(), tp.partition)).collect();
        assert_eq!(
            names,
            vec![
                (0, "validated.social", 0),
                (1, "validated.social", 1),
                (0, "validated.social", 2),
                (1, "validated.market", 0),
                (0, "validated.market", 1),
                (1, "context.weather", 0),
            ]
        );
        assert_eq!(assignment(&topics, 2), a, "deterministic");
        assert!(assignment(&topics, 1).iter().all(|(w, _)| *w == 0));
    }
}
