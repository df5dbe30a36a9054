//! Record types, from the raw line a source reads to the enriched record a sink writes.
//!
//! The type changes at anonymisation: [`SocialPost`] and [`MarketOrder`] still hold personal data
//! (author and customer ids, names, phone numbers, e-mail addresses); [`EnrichedPost`] and
//! [`EnrichedOrder`] cannot, so nothing personal can reach a sink by construction.

use serde::{Deserialize, Serialize};

use crate::catalog::Category;
use crate::city::City;
use crate::time::EventTime;

/// Which input stream a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StreamKind {
    /// Social posts (topic `validated.social`, file `social.jsonl`).
    Social,
    /// Marketplace orders (topic `validated.market`, file `market.jsonl`).
    Market,
    /// Hourly weather readings (topic `context.weather`, file `weather.jsonl`).
    Weather,
}

impl StreamKind {
    /// All streams in a fixed order.
    pub const ALL: [StreamKind; 3] = [StreamKind::Social, StreamKind::Market, StreamKind::Weather];

    /// Short name used in outputs and metric labels: `social`, `market`, `weather`.
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Social => "social",
            StreamKind::Market => "market",
            StreamKind::Weather => "weather",
        }
    }

    /// The Kafka topic of the stream.
    pub fn topic(self) -> &'static str {
        match self {
            StreamKind::Social => "validated.social",
            StreamKind::Market => "validated.market",
            StreamKind::Weather => "context.weather",
        }
    }

    /// The JSON Lines file of the stream in a replay input folder.
    pub fn file_name(self) -> &'static str {
        match self {
            StreamKind::Social => "social.jsonl",
            StreamKind::Market => "market.jsonl",
            StreamKind::Weather => "weather.jsonl",
        }
    }
}

/// Where a record came from: a Kafka partition and offset, or a file (partition 0) and 1-based line number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// Input stream.
    pub stream: StreamKind,
    /// Kafka partition; 0 for a file.
    pub partition: u32,
    /// Kafka offset, or the 1-based line number in a file.
    pub offset: u64,
}

/// One message as read by a source, before validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawLine {
    /// Source coordinates.
    pub origin: Origin,
    /// Wall-clock read time, ns since the Unix epoch (start of the latency measurement).
    pub ingest_ns: u64,
    /// The payload exactly as read (UTF-8 checked by the source; invalid bytes are dead letters there).
    pub payload: String,
}

/// Metadata every validated record carries through the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Source coordinates.
    pub origin: Origin,
    /// Event time from the record (`postedAt`, `orderedAt`, `timestamp`).
    pub event_time: EventTime,
    /// Wall-clock read time, ns since the Unix epoch.
    pub ingest_ns: u64,
}

/// A validated social post. Holds personal data: never give it to a sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SocialPost {
    /// Record metadata.
    pub meta: Meta,
    /// `postId`.
    pub post_id: String,
    /// `platform`.
    pub platform: String,
    /// `content`, free text (may hold phone numbers and e-mail addresses).
    pub content: String,
    /// `authorId` (personal).
    pub author_id: String,
    /// `authorName` (personal).
    pub author_name: Option<String>,
    /// `likesCount`.
    pub likes_count: u64,
    /// `commentsCount`.
    pub comments_count: u64,
    /// `sharesCount`.
    pub shares_count: u64,
    /// `hashtags`.
    pub hashtags: Option<Vec<String>>,
    /// `city`.
    pub city: City,
    /// `language`.
    pub language: Option<String>,
    /// `postedAt` as received (valid RFC 3339).
    pub posted_at: String,
    /// Unknown fields as JSON object members (`"k":v,"k2":v2`), empty when none.
    pub extra: String,
}

/// A validated marketplace order. Holds personal data: never give it to a sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarketOrder {
    /// Record metadata.
    pub meta: Meta,
    /// `orderId`.
    pub order_id: String,
    /// `platform`.
    pub platform: String,
    /// `customerId` (personal).
    pub customer_id: String,
    /// `customerPhone` (personal).
    pub customer_phone: Option<String>,
    /// `customerEmail` (personal).
    pub customer_email: Option<String>,
    /// `productId`.
    pub product_id: String,
    /// `productName`.
    pub product_name: String,
    /// `quantity`.
    pub quantity: u64,
    /// `unitPrice`, BDT.
    pub unit_price: f64,
    /// `totalPrice`, BDT.
    pub total_price: f64,
    /// `currency`.
    pub currency: String,
    /// `status`.
    pub status: String,
    /// `paymentMethod`.
    pub payment_method: String,
    /// `paymentStatus`.
    pub payment_status: Option<String>,
    /// `shippingRegion`.
    pub shipping_region: Option<String>,
    /// `shippingCity`.
    pub shipping_city: City,
    /// `orderedAt` as received.
    pub ordered_at: String,
    /// Unknown fields as JSON object members, empty when none.
    pub extra: String,
}

/// A validated weather reading (PIPELINE.md's fetcher format; °C, %, hPa, m, m/s).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeatherReading {
    /// Record metadata (event time = `timestamp`).
    pub meta: Meta,
    /// `city`.
    pub city: City,
    /// `country` (ISO 3166 alpha-2).
    pub country: String,
    /// `latitude`, degrees.
    pub latitude: f64,
    /// `longitude`, degrees.
    pub longitude: f64,
    /// `timestamp` as received.
    pub timestamp: String,
    /// `weather.condition`, e.g. `Rain`.
    pub condition: String,
    /// `weather.description`.
    pub description: String,
    /// `weather.icon`.
    pub icon: String,
    /// `temperature.current`, °C.
    pub temperature: f64,
    /// `temperature.feels_like`, °C.
    pub feels_like: f64,
    /// `temperature.min`, °C.
    pub temperature_min: f64,
    /// `temperature.max`, °C.
    pub temperature_max: f64,
    /// `humidity`, %.
    pub humidity: i64,
    /// `pressure`, hPa.
    pub pressure: f64,
    /// `visibility`, m.
    pub visibility: Option<f64>,
    /// `wind.speed`, m/s.
    pub wind_speed: f64,
    /// `wind.degree`, degrees.
    pub wind_degree: f64,
    /// `clouds`, %.
    pub clouds: i64,
    /// `sunrise`, RFC 3339.
    pub sunrise: String,
    /// `sunset`, RFC 3339.
    pub sunset: String,
    /// The payload as received (no personal data), kept as the raw record.
    pub raw: String,
}

/// Personal data found and removed by anonymisation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiiReport {
    /// Bit set of [`PiiReport::FIELDS`] that were dropped or replaced.
    pub fields: u8,
    /// Free text held a phone number or e-mail address (drives the PII detection rate).
    pub detected: bool,
}

impl PiiReport {
    /// Field names by bit position.
    pub const FIELDS: [&'static str; 7] =
        ["authorId", "authorName", "content", "customerId", "customerPhone", "customerEmail", "productName"];

    /// Marks the field at `bit` (an index into [`PiiReport::FIELDS`]).
    pub fn mark(&mut self, bit: usize) {
        self.fields |= 1 << bit;
    }

    /// The names of the fields dropped or replaced, in [`PiiReport::FIELDS`] order.
    pub fn field_names(self) -> impl Iterator<Item = &'static str> {
        PiiReport::FIELDS.into_iter().enumerate().filter(move |(i, _)| self.fields & (1 << i) != 0).map(|(_, n)| n)
    }
}

/// The weather reading joined to a record (as-of join, at most 3 h old).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeatherContext {
    /// `weather.condition` of the reading.
    pub condition: String,
    /// `temperature.current`, °C.
    pub temperature: f64,
    /// `humidity`, %.
    pub humidity: i64,
    /// Event time of the joined reading.
    pub observed_at: EventTime,
}

/// Calendar fields in Asia/Dhaka local time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    /// Hour of day 0–23, local.
    pub hour_of_day: u8,
    /// ISO weekday 1 (Monday) – 7 (Sunday), local.
    pub weekday: u8,
    /// Friday or Saturday (the Bangladeshi weekend).
    pub is_weekend: bool,
}

impl Calendar {
    /// English weekday name (`Friday`).
    pub fn day_name(self) -> &'static str {
        match self.weekday {
            1 => "Monday",
            2 => "Tuesday",
            3 => "Wednesday",
            4 => "Thursday",
            5 => "Friday",
            6 => "Saturday",
            _ => "Sunday",
        }
    }
}

/// Enrichment every stream shares, filled stage by stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Enrichment {
    /// What anonymisation removed.
    pub pii: PiiReport,
    /// Product category.
    pub category: Category,
    /// Category confidence 0.0–1.0 (1.0 from the catalog id, 0.8 from a name in text).
    pub category_confidence: f64,
    /// Joined weather, `None` when no reading within 3 h.
    pub weather: Option<WeatherContext>,
    /// Calendar fields.
    pub calendar: Calendar,
    /// 384-dim L2-normalised embedding, `None` until computed.
    pub embedding: Option<Vec<f32>>,
}

/// The model name written beside every embedding.
pub const EMBEDDING_MODEL: &str = "all-MiniLM-L6-v2";

impl Enrichment {
    /// [`EMBEDDING_MODEL`] when the record carries an embedding, else `None`.
    pub fn embedding_model(&self) -> Option<&'static str> {
        self.embedding.as_ref().map(|_| EMBEDDING_MODEL)
    }
}

/// A social post after anonymisation: no personal data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnrichedPost {
    /// Record metadata.
    pub meta: Meta,
    /// `postId`.
    pub post_id: String,
    /// `platform`.
    pub platform: String,
    /// `content` with phone numbers and e-mail addresses replaced by `[PHONE]` / `[EMAIL]`.
    pub content: String,
    /// Lowercase hex HMAC-SHA256 of `authorId`.
    pub author_hash: String,
    /// `likesCount`.
    pub likes_count: u64,
    /// `commentsCount`.
    pub comments_count: u64,
    /// `sharesCount`.
    pub shares_count: u64,
    /// `hashtags`.
    pub hashtags: Option<Vec<String>>,
    /// `city`.
    pub city: City,
    /// `language`.
    pub language: Option<String>,
    /// `postedAt` as received.
    pub posted_at: String,
    /// Unknown fields as JSON object members.
    pub extra: String,
    /// Enrichment fields.
    pub enrichment: Enrichment,
}

/// A marketplace order after anonymisation: no personal data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnrichedOrder {
    /// Record metadata.
    pub meta: Meta,
    /// `orderId`.
    pub order_id: String,
    /// `platform`.
    pub platform: String,
    /// Lowercase hex HMAC-SHA256 of `customerId`.
    pub customer_id_hash: String,
    /// `productId`.
    pub product_id: String,
    /// `productName`.
    pub product_name: String,
    /// `quantity`.
    pub quantity: u64,
    /// `unitPrice`, BDT.
    pub unit_price: f64,
    /// `totalPrice`, BDT.
    pub total_price: f64,
    /// `currency`.
    pub currency: String,
    /// `status`.
    pub status: String,
    /// `paymentMethod`.
    pub payment_method: String,
    /// `paymentStatus`.
    pub payment_status: Option<String>,
    /// `shippingRegion`.
    pub shipping_region: Option<String>,
    /// `shippingCity`.
    pub shipping_city: City,
    /// `orderedAt` as received.
    pub ordered_at: String,
    /// Unknown fields as JSON object members.
    pub extra: String,
    /// Enrichment fields.
    pub enrichment: Enrichment,
}

impl EnrichedPost {
    /// `engagementCount` = likes + comments + shares (saturating).
    pub fn engagement_count(&self) -> u64 {
        self.likes_count.saturating_add(self.comments_count).saturating_add(self.shares_count)
    }
}

/// Access every enriched record type gives to the stream-agnostic operators (join, calendar, quality).
pub trait Enriched {
    /// The stream the record belongs to.
    const STREAM: StreamKind;
    /// Record metadata.
    fn meta(&self) -> &Meta;
    /// The city used for the weather join.
    fn city(&self) -> City;
    /// Enrichment fields.
    fn enrichment(&self) -> &Enrichment;
    /// Mutable enrichment fields.
    fn enrichment_mut(&mut self) -> &mut Enrichment;
}

impl Enriched for EnrichedPost {
    const STREAM: StreamKind = StreamKind::Social;
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn city(&self) -> City {
        self.city
    }
    fn enrichment(&self) -> &Enrichment {
        &self.enrichment
    }
    fn enrichment_mut(&mut self) -> &mut Enrichment {
        &mut self.enrichment
    }
}

impl Enriched for EnrichedOrder {
    const STREAM: StreamKind = StreamKind::Market;
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn city(&self) -> City {
        self.shipping_city
    }
    fn enrichment(&self) -> &Enrichment {
        &self.enrichment
    }
    fn enrichment_mut(&mut self) -> &mut Enrichment {
        &mut self.enrichment
    }
}

/// A validated record with an identity used for de-duplication.
pub trait Keyed {
    /// Record metadata.
    fn meta(&self) -> &Meta;
    /// The de-duplication key (`postId`, `orderId`, or `city|timestamp`).
    fn dedup_key(&self) -> std::borrow::Cow<'_, str>;
}

impl Keyed for SocialPost {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn dedup_key(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(&self.post_id)
    }
}

impl Keyed for MarketOrder {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn dedup_key(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(&self.order_id)
    }
}

impl Keyed for WeatherReading {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn dedup_key(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Owned(format!("{}|{}", self.city.name(), self.meta.event_time.0))
    }
}
