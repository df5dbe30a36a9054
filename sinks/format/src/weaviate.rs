//! Weaviate objects for `POST /v1/batch/objects`: `{"objects":[{class,id,properties,vector?}]}`.
//!
//! Ids are UUIDv5(NAMESPACE_DNS, `"social:" + postId` / `"market:" + orderId`) (PIPELINE.md), so a
//! replay overwrites instead of duplicating. Properties follow PIPELINE.md's class lists (SocialPost 20,
//! MarketOrder 27); a property whose value is null is omitted (Weaviate stores absent and null alike);
//! dates are RFC 3339 UTC with `Z`.

use millionx_dataflow::record::{EnrichedOrder, EnrichedPost, Enrichment};
use millionx_sink_util::{Encoder, Framing};
use uuid::Uuid;

use crate::json::{IngestedAt, ObjectWriter};

/// The batch body framing.
pub const BATCH_FRAMING: Framing = Framing { open: "{\"objects\":[", separator: ",", close: "]}" };

/// The two classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// `SocialPost`.
    SocialPost,
    /// `MarketOrder`.
    MarketOrder,
}

impl Class {
    /// The class name.
    pub fn name(self) -> &'static str {
        match self {
            Class::SocialPost => "SocialPost",
            Class::MarketOrder => "MarketOrder",
        }
    }
}

/// The object id of a post: UUIDv5(NAMESPACE_DNS, `"social:" + postId`).
pub fn post_id(post_id: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_DNS, format!("social:{post_id}").as_bytes())
}

/// The object id of an order: UUIDv5(NAMESPACE_DNS, `"market:" + orderId`).
pub fn order_id(order_id: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_DNS, format!("market:{order_id}").as_bytes())
}

/// Encodes objects of one class.
#[derive(Debug, Default)]
pub struct ObjectEncoder {
    ingested_at: IngestedAt,
}

impl ObjectEncoder {
    /// A new encoder.
    pub fn new() -> ObjectEncoder {
        ObjectEncoder::default()
    }
}

fn shared_properties(w: &mut ObjectWriter<'_>, e: &Enrichment) {
    if let Some(wx) = &e.weather {
        w.text("weatherCondition", &wx.condition).field("temperature", &wx.temperature).field("humidity", &wx.humidity);
    }
    w.field("isWeekend", &e.calendar.is_weekend).field("hourOfDay", &e.calendar.hour_of_day);
    w.field_opt("embeddingModel", e.embedding_model());
    w.field("anonymized", &true).field("enriched", &e.weather.is_some());
}

fn close_object(mut w: ObjectWriter<'_>, e: &Enrichment) {
    if let Some(v) = &e.embedding {
        w.field("vector", v);
    }
    w.close();
}

impl Encoder<EnrichedPost> for ObjectEncoder {
    fn framing(&self) -> Framing {
        BATCH_FRAMING
    }

    fn encode(&mut self, p: &EnrichedPost, out: &mut Vec<u8>) {
        let e = &p.enrichment;
        let mut w = ObjectWriter::open(out);
        w.text("class", Class::SocialPost.name()).text("id", &post_id(&p.post_id).to_string());
        w.object("properties", |w| {
            w.text("postId", &p.post_id)
                .text("platform", &p.platform)
                .text("content", &p.content)
                .text("authorHash", &p.author_hash)
                .text("city", p.city.name())
                .time("postedAt", p.meta.event_time)
                .text("productCategory", e.category.name())
                .field("categoryConfidence", &e.category_confidence)
                .field("engagementCount", &p.engagement_count())
                .field("likesCount", &p.likes_count)
                .field("commentsCount", &p.comments_count)
                .field("sharesCount", &p.shares_count);
            shared_properties(w, e);
        });
        close_object(w, e);
    }
}

impl Encoder<EnrichedOrder> for ObjectEncoder {
    fn framing(&self) -> Framing {
        BATCH_FRAMING
    }

    fn encode(&mut self, o: &EnrichedOrder, out: &mut Vec<u8>) {
        let e = &o.enrichment;
        let ingested_at = self.ingested_at.now().to_owned();
        let mut w = ObjectWriter::open(out);
        w.text("class", Class::MarketOrder.name()).text("id", &order_id(&o.order_id).to_string());
        w.object("properties", |w| {
            w.text("orderId", &o.order_id)
                .text("platform", &o.platform)
                .text("customerIdHash", &o.customer_id_hash)
                .text("productId", &o.product_id)
                .text("productName", &o.product_name)
                .text("productCategory", e.category.name())
                .field("categoryConfidence", &e.category_confidence)
                .field("quantity", &o.quantity)
                .field("unitPrice", &o.unit_price)
                .field("totalPrice", &o.total_price)
                .text("currency", &o.currency)
                .text("status", &o.status)
                .text("paymentMethod", &o.payment_method)
                .text_opt("paymentStatus", o.payment_status.as_deref())
                .text_opt("shippingRegion", o.shipping_region.as_deref())
                .text("shippingCity", o.shipping_city.name())
                .time("orderedAt", o.meta.event_time)
                .text("dayOfWeek", e.calendar.day_name());
            shared_properties(w, e);
            w.text("ingestedAt", &ingested_at);
        });
        close_object(w, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v5_of_the_prefixed_id() {
        // Python's independent implementation: uuid.uuid5(uuid.NAMESPACE_DNS, "social:S-000000001")
        assert_eq!(post_id("S-000000001").to_string(), "45aa3465-aea6-522e-bb2a-96b57025d06e");
        assert_ne!(post_id("S-000000001"), order_id("S-000000001"));
        assert_eq!(post_id("x"), Uuid::new_v5(&Uuid::NAMESPACE_DNS, b"social:x"));
    }
}
