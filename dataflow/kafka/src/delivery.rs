//! Delivery reports counted per producer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;

/// Counts failed deliveries (the message's own error never carries the payload into logs).
#[derive(Default)]
pub struct CountingContext {
    /// Deliveries that failed after librdkafka's retries.
    pub failed: Arc<AtomicU64>,
    /// Deliveries acknowledged by the broker.
    pub delivered: Arc<AtomicU64>,
}

impl ClientContext for CountingContext {}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}
