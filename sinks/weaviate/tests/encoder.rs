//! The pipeline's own Weaviate encoder (`millionx-sink-format`) through the writer into the double with
//! the `ops/weaviate` classes: the wire format and the class definitions agree. Uses the class names
//! `SocialPost`/`MarketOrder` the encoder writes, so it always runs against the double.

mod common;

use common::*;
use millionx_dataflow::catalog::Category;
use millionx_dataflow::record::{Calendar, EnrichedOrder, EnrichedPost, Enrichment, Meta, WeatherContext};
use millionx_dataflow::{City, EventTime, Origin, StreamKind};
use millionx_sink_format::weaviate::{order_id, post_id, ObjectEncoder, BATCH_FRAMING};
use millionx_sink_util::{EncodedBatch, Encoder};
use millionx_sink_weaviate::schema::SchemaArgs;
use millionx_sink_weaviate::WeaviateWriter;
use millionx_weaviate_double::WeaviateDouble;

fn meta(stream: StreamKind, offset: u64, time: &str) -> Meta {
    Meta {
        origin: Origin { stream, partition: 0, offset },
        event_time: EventTime::parse_rfc3339(time).expect("time"),
        ingest_ns: 1,
    }
}

fn enrichment(weather: bool, embedding: bool) -> Enrichment {
    Enrichment {
        category: Category::Electronics,
        category_confidence: 0.8,
        weather: weather.then(|| WeatherContext {
            condition: "Rain".into(),
            temperature: 27.0,
            humidity: 88,
            observed_at: EventTime(0),
        }),
        calendar: Calendar { hour_of_day: 16, weekday: 5, is_weekend: true },
        embedding: embedding.then(|| vector(3, 384).into_iter().map(|x| x as f32).collect()),
        ..Enrichment::default()
    }
}

fn post(n: u64, weather: bool, embedding: bool) -> EnrichedPost {
    EnrichedPost {
        meta: meta(StreamKind::Social, n, "2024-03-01T10:15:00+06:00"),
        post_id: format!("S-{n:09}"),
        platform: "facebook".into(),
        content: "Samsung Galaxy A14 available, call [PHONE]".into(),
        author_hash: format!("{n:064x}"),
        likes_count: 10,
        comments_count: 2,
        shares_count: n,
        hashtags: None,
        city: City::Dhaka,
        language: None,
        posted_at: "2024-03-01T10:15:00+06:00".into(),
        extra: "{}".into(),
        enrichment: enrichment(weather, embedding),
    }
}

fn order(n: u64) -> EnrichedOrder {
    EnrichedOrder {
        meta: meta(StreamKind::Market, n, "2024-03-01T04:00:00Z"),
        order_id: format!("M-{n:09}"),
        platform: "daraz".into(),
        customer_id_hash: format!("{:064x}", n + 9),
        product_id: "P-1001".into(),
        product_name: "Samsung Galaxy A14".into(),
        quantity: 2,
        unit_price: 18999.5,
        total_price: 37999.0,
        currency: "BDT".into(),
        status: "delivered".into(),
        payment_method: "bkash".into(),
        payment_status: Some("paid".into()),
        shipping_region: Some("Dhaka Division".into()),
        shipping_city: City::Dhaka,
        ordered_at: "2024-03-01T04:00:00Z".into(),
        extra: "{}".into(),
        enrichment: enrichment(true, true),
    }
}

fn encode<T>(records: &[T], origin: impl Fn(&T) -> Origin) -> EncodedBatch
where
    ObjectEncoder: Encoder<T>,
{
    let mut encoder = ObjectEncoder::new();
    let mut batch = EncodedBatch::new(0, BATCH_FRAMING);
    for r in records {
        batch.push_with(origin(r), 0, |out| encoder.encode(r, out));
    }
    batch.close();
    batch
}

#[test]
fn encoded_posts_and_orders_land_with_their_properties_and_replays_add_none() {
    let double = WeaviateDouble::start().expect("double");
    let url = double.url();
    let classes = vec![builtin_def("SocialPost"), builtin_def("MarketOrder")];
    let report = run_schema_command(&url, &SchemaArgs::default(), &classes, &mut |_| false).expect("schema");
    assert_eq!(report.created.len(), 2);

    let posts = [post(1, true, true), post(2, false, true), post(3, false, false)];
    let orders = [order(1), order(2)];
    let post_batch = encode(&posts, |p| p.meta.origin);
    let order_batch = encode(&orders, |o| o.meta.origin);
    let mut writer = WeaviateWriter::new(&config(&url)).expect("writer");
    for _replay in 0..2 {
        let done = write_all(&mut writer, vec![post_batch.clone(), order_batch.clone()]);
        for c in &done {
            assert_eq!(c.result.as_ref().expect("written").rejected, vec![], "batch {}", c.seq);
        }
    }
    assert_eq!(double.count("SocialPost"), 3);
    assert_eq!(double.count("MarketOrder"), 2);
    let full = double.object("SocialPost", post_id("S-000000001")).expect("stored");
    assert_eq!(full.properties.len(), 20, "{:?}", full.properties.keys());
    assert_eq!(full.properties["postedAt"], "2024-03-01T04:15:00Z");
    assert_eq!(full.properties["engagementCount"], 13);
    assert_eq!(full.vector.as_ref().map(Vec::len), Some(384));
    // Without weather the three weather properties are omitted; without an embedding, embeddingModel.
    let no_weather = double.object("SocialPost", post_id("S-000000002")).expect("stored");
    assert_eq!(no_weather.properties.len(), 17);
    assert_eq!(no_weather.properties["enriched"], false);
    let bare = double.object("SocialPost", post_id("S-000000003")).expect("stored");
    assert_eq!((bare.properties.len(), bare.vector.is_none()), (16, true));
    let o = double.object("MarketOrder", order_id("M-000000001")).expect("stored");
    assert_eq!(o.properties.len(), 27, "{:?}", o.properties.keys());
    assert_eq!(o.properties["dayOfWeek"], "Friday");
    // The classes were not widened by auto-schema: the encoder writes exactly the defined properties.
    let report =
        run_schema_command(&url, &SchemaArgs { verify_only: true, ..SchemaArgs::default() }, &classes, &mut |_| false)
            .expect("verify");
    assert_eq!(report.drift, vec![]);
}
