//! Snowflake rows for `MILLIONX.RAW_DATA`: one JSON object per row, keys = column names.
//!
//! Columns are the PIPELINE.md field names in upper snake case (`postId` → `POST_ID`), nested weather
//! fields flattened (`weather.condition` → `WEATHER_CONDITION`, `temperature.current` → `TEMPERATURE`),
//! plus `RAW_RECORD` (the anonymised record as an object), `KAFKA_TOPIC`, `KAFKA_PARTITION`,
//! `KAFKA_OFFSET` and `INGESTED_AT` (RFC 3339 UTC). `ops/snowflake/schema-setup.sql` declares the same
//! columns. Null values are written as JSON `null`.

use millionx_dataflow::record::{EnrichedOrder, EnrichedPost, Meta, WeatherReading};
use millionx_sink_util::{Encoder, Framing};

use crate::json::{IngestedAt, ObjectWriter};

/// The four tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    /// `SOCIAL_POSTS`.
    SocialPosts,
    /// `MARKET_ORDERS`.
    MarketOrders,
    /// `PRICE_HISTORY`: one row per valid order.
    PriceHistory,
    /// `WEATHER_LOGS`: one row per reading.
    WeatherLogs,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 4] = [Table::SocialPosts, Table::MarketOrders, Table::PriceHistory, Table::WeatherLogs];

    /// The table name.
    pub fn name(self) -> &'static str {
        match self {
            Table::SocialPosts => "SOCIAL_POSTS",
            Table::MarketOrders => "MARKET_ORDERS",
            Table::PriceHistory => "PRICE_HISTORY",
            Table::WeatherLogs => "WEATHER_LOGS",
        }
    }

    /// The merge key columns (a replayed record updates the row with the same key).
    pub fn key_columns(self) -> &'static [&'static str] {
        match self {
            Table::SocialPosts => &["POST_ID"],
            Table::MarketOrders | Table::PriceHistory => &["ORDER_ID"],
            Table::WeatherLogs => &["CITY", "TIMESTAMP"],
        }
    }
}

/// Encodes rows of one table with a chosen framing (NDJSON for files and Snowpipe Streaming, a JSON
/// array for the SQL batch loader's single bind).
#[derive(Debug)]
pub struct RowEncoder {
    table: Table,
    framing: Framing,
    ingested_at: IngestedAt,
}

impl RowEncoder {
    /// An encoder for `table` with `framing` ([`Framing::NDJSON`] or [`Framing::JSON_ARRAY`]).
    pub fn new(table: Table, framing: Framing) -> RowEncoder {
        RowEncoder { table, framing, ingested_at: IngestedAt::default() }
    }

    /// The table this encoder writes.
    pub fn table(&self) -> Table {
        self.table
    }

    fn finish(&self, out: &mut Vec<u8>) {
        if self.framing == Framing::NDJSON {
            out.push(b'\n');
        }
    }
}

fn kafka_columns(w: &mut ObjectWriter<'_>, meta: &Meta) {
    w.text("KAFKA_TOPIC", meta.origin.stream.topic())
        .field("KAFKA_PARTITION", &meta.origin.partition)
        .field("KAFKA_OFFSET", &meta.origin.offset);
}

fn weather_columns(w: &mut ObjectWriter<'_>, e: &millionx_dataflow::record::Enrichment) {
    let wx = e.weather.as_ref();
    w.field("WEATHER_CONDITION", &wx.map(|x| x.condition.as_str()))
        .field("TEMPERATURE", &wx.map(|x| x.temperature))
        .field("HUMIDITY", &wx.map(|x| x.humidity))
        .field("IS_WEEKEND", &e.calendar.is_weekend)
        .field("HOUR_OF_DAY", &e.calendar.hour_of_day);
}

fn pii_columns(w: &mut ObjectWriter<'_>, e: &millionx_dataflow::record::Enrichment) {
    let fields: Vec<&str> = e.pii.field_names().collect();
    w.field("EMBEDDING_MODEL", &e.embedding_model())
        .field("ANONYMIZED", &true)
        .field("PII_FIELDS", &fields)
        .field("PII_DETECTED", &e.pii.detected)
        .field("ENRICHED", &e.weather.is_some());
}

/// The anonymised raw post as an object (camelCase keys as received, ids replaced by hashes).
pub fn raw_post(p: &EnrichedPost, out: &mut Vec<u8>) {
    let mut r = ObjectWriter::open(out);
    r.text("postId", &p.post_id)
        .text("platform", &p.platform)
        .text("content", &p.content)
        .text("authorHash", &p.author_hash)
        .field("likesCount", &p.likes_count)
        .field("commentsCount", &p.comments_count)
        .field("sharesCount", &p.shares_count)
        .field_opt("hashtags", p.hashtags.as_ref())
        .text("city", p.city.name())
        .text_opt("language", p.language.as_deref())
        .text("postedAt", &p.posted_at)
        .members(&p.extra);
    r.close();
}

/// The anonymised raw order as an object.
pub fn raw_order(o: &EnrichedOrder, out: &mut Vec<u8>) {
    let mut r = ObjectWriter::open(out);
    r.text("orderId", &o.order_id)
        .text("platform", &o.platform)
        .text("customerIdHash", &o.customer_id_hash)
        .text("productId", &o.product_id)
        .text("productName", &o.product_name)
        .field("quantity", &o.quantity)
        .field("unitPrice", &o.unit_price)
        .field("totalPrice", &o.total_price)
        .text("currency", &o.currency)
        .text("status", &o.status)
        .text("paymentMethod", &o.payment_method)
        .text_opt("paymentStatus", o.payment_status.as_deref())
        .text_opt("shippingRegion", o.shipping_region.as_deref())
        .text("shippingCity", o.shipping_city.name())
        .text("orderedAt", &o.ordered_at)
        .members(&o.extra);
    r.close();
}

impl Encoder<EnrichedPost> for RowEncoder {
    fn framing(&self) -> Framing {
        self.framing
    }

    fn encode(&mut self, p: &EnrichedPost, out: &mut Vec<u8>) {
        let e = &p.enrichment;
        let mut w = ObjectWriter::open(out);
        w.text("POST_ID", &p.post_id)
            .text("PLATFORM", &p.platform)
            .text("CONTENT", &p.content)
            .text("AUTHOR_HASH", &p.author_hash)
            .field("LIKES_COUNT", &p.likes_count)
            .field("COMMENTS_COUNT", &p.comments_count)
            .field("SHARES_COUNT", &p.shares_count)
            .field("ENGAGEMENT_COUNT", &p.engagement_count())
            .field("HASHTAGS", &p.hashtags)
            .text("CITY", p.city.name())
            .text_or_null("LANGUAGE", p.language.as_deref())
            .time("POSTED_AT", p.meta.event_time)
            .text("PRODUCT_CATEGORY", e.category.name())
            .field("CATEGORY_CONFIDENCE", &e.category_confidence);
        weather_columns(&mut w, e);
        pii_columns(&mut w, e);
        w.with("RAW_RECORD", |b| raw_post(p, b));
        kafka_columns(&mut w, &p.meta);
        w.text("INGESTED_AT", self.ingested_at.now());
        w.close();
        self.finish(out);
    }
}

/// Encodes `MARKET_ORDERS` rows; wrap in [`PriceRow`] for `PRICE_HISTORY`.
impl Encoder<EnrichedOrder> for RowEncoder {
    fn framing(&self) -> Framing {
        self.framing
    }

    fn encode(&mut self, o: &EnrichedOrder, out: &mut Vec<u8>) {
        let e = &o.enrichment;
        let mut w = ObjectWriter::open(out);
        if self.table == Table::PriceHistory {
            w.text("ORDER_ID", &o.order_id)
                .text("PRODUCT_ID", &o.product_id)
                .text("PRODUCT_NAME", &o.product_name)
                .text("PRODUCT_CATEGORY", e.category.name())
                .text("PLATFORM", &o.platform)
                .field("UNIT_PRICE", &o.unit_price)
                .text("CURRENCY", &o.currency)
                .text("CITY", o.shipping_city.name())
                .time("RECORDED_AT", o.meta.event_time)
                .text("INGESTED_AT", self.ingested_at.now());
            w.close();
            self.finish(out);
            return;
        }
        w.text("ORDER_ID", &o.order_id)
            .text("PLATFORM", &o.platform)
            .text("CUSTOMER_ID_HASH", &o.customer_id_hash)
            .text("PRODUCT_ID", &o.product_id)
            .text("PRODUCT_NAME", &o.product_name)
            .text("PRODUCT_CATEGORY", e.category.name())
            .field("CATEGORY_CONFIDENCE", &e.category_confidence)
            .field("QUANTITY", &o.quantity)
            .field("UNIT_PRICE", &o.unit_price)
            .field("TOTAL_PRICE", &o.total_price)
            .text("CURRENCY", &o.currency)
            .text("STATUS", &o.status)
            .text("PAYMENT_METHOD", &o.payment_method)
            .text_or_null("PAYMENT_STATUS", o.payment_status.as_deref())
            .text_or_null("SHIPPING_REGION", o.shipping_region.as_deref())
            .text("SHIPPING_CITY", o.shipping_city.name())
            .time("ORDERED_AT", o.meta.event_time)
            .text("DAY_OF_WEEK", e.calendar.day_name());
        weather_columns(&mut w, e);
        pii_columns(&mut w, e);
        w.with("RAW_RECORD", |b| raw_order(o, b));
        kafka_columns(&mut w, &o.meta);
        w.text("INGESTED_AT", self.ingested_at.now());
        w.close();
        self.finish(out);
    }
}

impl Encoder<WeatherReading> for RowEncoder {
    fn framing(&self) -> Framing {
        self.framing
    }

    fn encode(&mut self, r: &WeatherReading, out: &mut Vec<u8>) {
        let mut w = ObjectWriter::open(out);
        w.text("CITY", r.city.name())
            .text("COUNTRY", &r.country)
            .field("LATITUDE", &r.latitude)
            .field("LONGITUDE", &r.longitude)
            .time("TIMESTAMP", r.meta.event_time)
            .field("WEATHER_CONDITION", &r.condition)
            .text("WEATHER_DESCRIPTION", &r.description)
            .text("WEATHER_ICON", &r.icon)
            .field("TEMPERATURE", &r.temperature)
            .field("FEELS_LIKE", &r.feels_like)
            .field("TEMPERATURE_MIN", &r.temperature_min)
            .field("TEMPERATURE_MAX", &r.temperature_max)
            .field("HUMIDITY", &r.humidity)
            .field("PRESSURE", &r.pressure)
            .field("VISIBILITY", &r.visibility)
            .field("WIND_SPEED", &r.wind_speed)
            .field("WIND_DEGREE", &r.wind_degree)
            .field("CLOUDS", &r.clouds)
            .text("SUNRISE", &r.sunrise)
            .text("SUNSET", &r.sunset)
            .raw("RAW_RECORD", &r.raw);
        kafka_columns(&mut w, &r.meta);
        w.text("INGESTED_AT", self.ingested_at.now());
        w.close();
        self.finish(out);
    }
}
