//! Method `sql_batch` and the schema against the fakesnow emulator (started here; the tests fail when the
//! venv from `.ci/setup.d/30-fakesnow.sh` is missing).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{batch, drive, num, origin, social_rows, text};
use jiff::{Timestamp, ToSpan};
use millionx_dataflow::StreamKind;
use millionx_sink_snowflake::config::SnowflakeConfig;
use millionx_sink_snowflake::schema::apply_schema;
use millionx_sink_snowflake::sql::client::{Rows, SqlClient};
use millionx_sink_snowflake::{Metrics, SnowflakeSink, Table};
use millionx_sink_util::{BatchWriter, Framing};
use millionx_snowflake_testing::Fakesnow;
use serde_json::{json, Value};

struct Db {
    rt: tokio::runtime::Runtime,
    client: SqlClient,
}

impl Db {
    fn new(config: &SnowflakeConfig) -> Db {
        let creds = config.resolve_credentials(&millionx_dataflow::config::Env::process()).expect("credentials");
        let client = SqlClient::new(config, creds, Arc::new(Metrics::default())).expect("client");
        Db { rt: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"), client }
    }

    fn query(&self, sql: &str) -> Rows {
        self.rt.block_on(self.client.execute(sql, None)).unwrap_or_else(|e| panic!("{sql}: {e}")).0
    }

    fn count(&self, table: &str) -> i64 {
        num(&self.query(&format!("SELECT COUNT(*) AS N FROM MILLIONX.RAW_DATA.{table}"))[0]["N"]) as i64
    }

    fn apply_schema(&self) -> usize {
        self.rt.block_on(apply_schema(&self.client, std::io::sink())).expect("schema applies")
    }
}

fn start() -> (Fakesnow, SnowflakeConfig) {
    let f = Fakesnow::start().unwrap_or_else(|e| panic!("{e}"));
    let c = f.config();
    (f, c)
}

fn rfc(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn date(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d").to_string()
}

/// Rows of `view` as maps, sorted by the text of `keys`.
fn view(db: &Db, view: &str, order_by: &str) -> Rows {
    db.query(&format!("SELECT * FROM MILLIONX.RAW_DATA.{view} ORDER BY {order_by}"))
}

fn assert_row(row: &serde_json::Map<String, Value>, texts: &[(&str, &str)], nums: &[(&str, f64)]) {
    for (k, v) in texts {
        assert_eq!(text(&row[*k]), *v, "{k} in {row:?}");
    }
    for (k, v) in nums {
        let got = num(&row[*k]);
        assert!((got - v).abs() < 1e-6, "{k}: {got} != {v} in {row:?}");
    }
}

#[test]
fn schema_applies_twice_and_every_view_adds_up() {
    let (_f, config) = start();
    let db = Db::new(&config);
    let n = db.apply_schema();
    assert_eq!(db.apply_schema(), n, "second application runs the same statements without error");

    let base = Timestamp::now().checked_sub(2.hours()).expect("time");
    let base = Timestamp::from_second(base.as_second()).expect("whole seconds");
    let ingest = base.checked_add(60.seconds()).expect("time");
    let day = |d: i64| base.checked_sub((24 * d).hours()).expect("time");
    let sink = SnowflakeSink::connect(&config).expect("connect");

    // SOCIAL_POSTS: three recent posts and one 10 days old.
    let post = |id: &str,
                platform: &str,
                cat: &str,
                city: &str,
                l: i64,
                c: i64,
                s: i64,
                at,
                emb: bool,
                anon: bool,
                pii: bool| {
        json!({"POST_ID": id, "PLATFORM": platform, "PRODUCT_CATEGORY": cat, "CITY": city, "LIKES_COUNT": l,
               "COMMENTS_COUNT": c, "SHARES_COUNT": s, "ENGAGEMENT_COUNT": l + c + s, "POSTED_AT": rfc(at),
               "EMBEDDING_MODEL": if emb { json!("all-MiniLM-L6-v2") } else { Value::Null },
               "ANONYMIZED": anon, "PII_DETECTED": pii, "INGESTED_AT": rfc(ingest), "KAFKA_TOPIC": "validated.social"})
    };
    let posts = vec![
        post("S1", "facebook", "electronics", "Dhaka", 10, 2, 1, base, true, true, true),
        post("S2", "facebook", "electronics", "Dhaka", 4, 0, 1, base, false, true, false),
        post("S3", "tiktok", "fashion", "Sylhet", 1, 1, 1, base, true, true, false),
        post("S4", "facebook", "electronics", "Dhaka", 100, 0, 0, day(10), true, false, true),
    ];
    // MARKET_ORDERS: three to add up by hand, one cancelled, one 40 days old without weather.
    let order = |id: &str,
                 region: &str,
                 cat: &str,
                 q: i64,
                 unit: f64,
                 status: &str,
                 w: Option<(&str, f64, i64)>,
                 at,
                 emb: bool| {
        json!({"ORDER_ID": id, "SHIPPING_REGION": region, "PRODUCT_CATEGORY": cat, "QUANTITY": q, "UNIT_PRICE": unit,
               "TOTAL_PRICE": (unit * q as f64 * 100.0).round() / 100.0, "STATUS": status, "ORDERED_AT": rfc(at),
               "WEATHER_CONDITION": w.map(|w| w.0), "TEMPERATURE": w.map(|w| w.1), "HUMIDITY": w.map(|w| w.2),
               "ENRICHED": w.is_some(), "EMBEDDING_MODEL": if emb { json!("all-MiniLM-L6-v2") } else { Value::Null },
               "ANONYMIZED": true, "PII_DETECTED": false, "INGESTED_AT": rfc(ingest)})
    };
    let orders = vec![
        order("O1", "Dhaka", "electronics", 2, 1000.0, "delivered", Some(("Rain", 30.0, 80)), base, true),
        order("O2", "Dhaka", "electronics", 1, 1100.5, "confirmed", Some(("Rain", 28.0, 70)), base, true),
        order("O3", "Chattogram", "groceries", 5, 420.0, "pending", Some(("Clear", 33.0, 60)), base, false),
        order("O4", "Dhaka", "electronics", 3, 900.0, "cancelled", Some(("Clouds", 25.0, 50)), base, true),
        order("O5", "Dhaka", "electronics", 1, 1000.0, "delivered", None, day(40), true),
    ];
    let price = |id: &str, product: &str, p: f64, at| {
        json!({"ORDER_ID": id, "PRODUCT_ID": product, "PRODUCT_NAME": format!("name of {product}"),
               "PRODUCT_CATEGORY": "electronics", "UNIT_PRICE": p, "CURRENCY": "BDT", "RECORDED_AT": rfc(at),
               "INGESTED_AT": rfc(ingest)})
    };
    let prices = vec![
        price("O1", "P-1001", 1000.0, base),
        price("O2", "P-1001", 1100.5, base),
        price("O3", "P-3001", 420.0, base),
        price("O6", "P-1001", 900.0, day(1)),
    ];
    let weather = vec![
        json!({"CITY": "Dhaka", "TIMESTAMP": rfc(base), "TEMPERATURE": 30.0, "RAW_RECORD": {"city": "Dhaka"}, "INGESTED_AT": rfc(ingest)}),
        json!({"CITY": "Sylhet", "TIMESTAMP": rfc(base), "TEMPERATURE": 24.5, "INGESTED_AT": rfc(ingest)}),
    ];
    for (table, stream, rows) in [
        (Table::SocialPosts, StreamKind::Social, posts),
        (Table::MarketOrders, StreamKind::Market, orders),
        (Table::PriceHistory, StreamKind::Market, prices),
        (Table::WeatherLogs, StreamKind::Weather, weather),
    ] {
        let rows: Vec<_> = rows.into_iter().enumerate().map(|(i, r)| (origin(stream, 0, i as u64), r)).collect();
        let done = drive(&mut sink.writer(table), vec![batch(0, &rows, Framing::JSON_ARRAY)], Duration::from_secs(60));
        let outcome = done[0].result.as_ref().expect("batch written");
        assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    }
    db.query(&format!(
        "INSERT INTO SNOWFLAKE.ACCOUNT_USAGE.WAREHOUSE_METERING_HISTORY (START_TIME, WAREHOUSE_NAME, CREDITS_USED, \
         CREDITS_USED_COMPUTE, CREDITS_USED_CLOUD_SERVICES) VALUES ('{b}', 'MILLIONX_WH', 1.5, 1.4, 0.1), \
         ('{b1}', 'MILLIONX_WH', 0.25, 0.25, 0), ('{b}', 'OTHER_WH', 5, 5, 0), ('{old}', 'MILLIONX_WH', 9, 9, 0)",
        b = rfc(base),
        b1 = rfc(base.checked_add(1.minute()).expect("time")),
        old = rfc(day(40)),
    ));

    let trends = view(&db, "VW_RECENT_SOCIAL_TRENDS", "PLATFORM");
    assert_eq!(trends.len(), 2, "the 10-day-old post is outside the 7-day window: {trends:?}");
    assert_row(
        &trends[0],
        &[("PLATFORM", "facebook"), ("PRODUCT_CATEGORY", "electronics"), ("CITY", "Dhaka")],
        &[
            ("POST_COUNT", 2.0),
            ("TOTAL_LIKES", 14.0),
            ("TOTAL_COMMENTS", 2.0),
            ("TOTAL_SHARES", 2.0),
            ("TOTAL_ENGAGEMENT", 18.0),
            ("AVG_ENGAGEMENT", 9.0),
        ],
    );
    assert_row(
        &trends[1],
        &[("PLATFORM", "tiktok"), ("CITY", "Sylhet")],
        &[("POST_COUNT", 1.0), ("TOTAL_ENGAGEMENT", 3.0), ("AVG_ENGAGEMENT", 3.0)],
    );

    let demand = view(&db, "VW_PRODUCT_DEMAND_BY_REGION", "SHIPPING_REGION");
    assert_eq!(demand.len(), 2, "cancelled and 40-day-old orders are left out: {demand:?}");
    assert_row(
        &demand[0],
        &[("SHIPPING_REGION", "Chattogram"), ("PRODUCT_CATEGORY", "groceries")],
        &[("ORDER_COUNT", 1.0), ("TOTAL_QUANTITY", 5.0), ("TOTAL_REVENUE_BDT", 2100.0), ("AVG_UNIT_PRICE_BDT", 420.0)],
    );
    assert_row(
        &demand[1],
        &[("SHIPPING_REGION", "Dhaka"), ("PRODUCT_CATEGORY", "electronics")],
        &[
            ("ORDER_COUNT", 2.0),
            ("TOTAL_QUANTITY", 3.0),
            ("TOTAL_REVENUE_BDT", 3100.5),
            ("AVG_UNIT_PRICE_BDT", 1050.25),
        ],
    );

    let corr = view(&db, "VW_WEATHER_ORDER_CORRELATION", "WEATHER_CONDITION");
    assert_eq!(corr.len(), 3, "{corr:?}");
    assert_row(
        &corr[0],
        &[("WEATHER_CONDITION", "Clear")],
        &[
            ("ORDER_COUNT", 1.0),
            ("TOTAL_QUANTITY", 5.0),
            ("AVG_TEMPERATURE_C", 33.0),
            ("AVG_HUMIDITY_PCT", 60.0),
            ("TOTAL_REVENUE_BDT", 2100.0),
            ("AVG_ORDER_VALUE_BDT", 2100.0),
        ],
    );
    assert_row(&corr[1], &[("WEATHER_CONDITION", "Clouds")], &[("ORDER_COUNT", 1.0), ("TOTAL_REVENUE_BDT", 2700.0)]);
    assert_row(
        &corr[2],
        &[("WEATHER_CONDITION", "Rain"), ("PRODUCT_CATEGORY", "electronics")],
        &[
            ("ORDER_COUNT", 2.0),
            ("TOTAL_QUANTITY", 3.0),
            ("AVG_TEMPERATURE_C", 29.0),
            ("AVG_HUMIDITY_PCT", 75.0),
            ("TOTAL_REVENUE_BDT", 3100.5),
            ("AVG_ORDER_VALUE_BDT", 1550.25),
        ],
    );

    let trends = view(&db, "VW_PRICE_TRENDS", "PRODUCT_ID, PRICE_DATE");
    assert_eq!(trends.len(), 3, "{trends:?}");
    assert_row(
        &trends[0],
        &[("PRODUCT_ID", "P-1001"), ("PRICE_DATE", &date(day(1)))],
        &[("OBSERVATIONS", 1.0), ("MIN_UNIT_PRICE_BDT", 900.0), ("MAX_UNIT_PRICE_BDT", 900.0)],
    );
    assert_row(
        &trends[1],
        &[("PRODUCT_ID", "P-1001"), ("PRICE_DATE", &date(base))],
        &[
            ("OBSERVATIONS", 2.0),
            ("MIN_UNIT_PRICE_BDT", 1000.0),
            ("MAX_UNIT_PRICE_BDT", 1100.5),
            ("AVG_UNIT_PRICE_BDT", 1050.25),
        ],
    );
    assert_row(&trends[2], &[("PRODUCT_ID", "P-3001")], &[("OBSERVATIONS", 1.0), ("AVG_UNIT_PRICE_BDT", 420.0)]);

    let stats = view(&db, "VW_DAILY_INGESTION_STATS", "TABLE_NAME");
    let ingest_date = date(ingest);
    let expect = [
        ("MARKET_ORDERS", 5.0, (4.0 * 60.0 + (40.0 * 86400.0 + 60.0)) / 5.0),
        ("PRICE_HISTORY", 4.0, (3.0 * 60.0 + 86460.0) / 4.0),
        ("SOCIAL_POSTS", 4.0, (3.0 * 60.0 + (10.0 * 86400.0 + 60.0)) / 4.0),
        ("WEATHER_LOGS", 2.0, 60.0),
    ];
    assert_eq!(stats.len(), 4, "{stats:?}");
    for (row, (table, count, lag)) in stats.iter().zip(expect) {
        assert_row(
            row,
            &[("TABLE_NAME", table), ("INGEST_DATE", &ingest_date)],
            &[("ROW_COUNT", count), ("AVG_LAG_SECONDS", lag)],
        );
    }

    let cost = view(&db, "VW_WAREHOUSE_COST_TRACKING", "USAGE_DATE");
    assert_eq!(cost.len(), 1, "other warehouses and days older than 30 are left out: {cost:?}");
    assert_row(
        &cost[0],
        &[("WAREHOUSE_NAME", "MILLIONX_WH"), ("USAGE_DATE", &date(base))],
        &[
            ("CREDITS_USED", 1.75),
            ("CREDITS_USED_COMPUTE", 1.65),
            ("CREDITS_USED_CLOUD_SERVICES", 0.1),
            ("ESTIMATED_COST_USD", 5.25),
        ],
    );

    let emb = view(&db, "VW_DATA_QUALITY_EMBEDDINGS", "TABLE_NAME");
    assert_eq!(emb.len(), 2, "{emb:?}");
    assert_row(
        &emb[0],
        &[("TABLE_NAME", "MARKET_ORDERS")],
        &[("TOTAL_ROWS", 5.0), ("MISSING_EMBEDDINGS", 1.0), ("EMBEDDING_COVERAGE", 0.8)],
    );
    assert_row(
        &emb[1],
        &[("TABLE_NAME", "SOCIAL_POSTS")],
        &[("TOTAL_ROWS", 4.0), ("MISSING_EMBEDDINGS", 1.0), ("EMBEDDING_COVERAGE", 0.75)],
    );

    let anon = view(&db, "VW_DATA_QUALITY_ANONYMIZATION", "TABLE_NAME");
    assert_eq!(anon.len(), 2, "{anon:?}");
    assert_row(
        &anon[0],
        &[("TABLE_NAME", "MARKET_ORDERS")],
        &[
            ("TOTAL_ROWS", 5.0),
            ("ANONYMIZED_ROWS", 5.0),
            ("NOT_ANONYMIZED_ROWS", 0.0),
            ("PII_DETECTED_ROWS", 0.0),
            ("ANONYMIZATION_COVERAGE", 1.0),
            ("PII_DETECTION_RATE", 0.0),
        ],
    );
    assert_row(
        &anon[1],
        &[("TABLE_NAME", "SOCIAL_POSTS")],
        &[
            ("TOTAL_ROWS", 4.0),
            ("ANONYMIZED_ROWS", 3.0),
            ("NOT_ANONYMIZED_ROWS", 1.0),
            ("PII_DETECTED_ROWS", 2.0),
            ("ANONYMIZATION_COVERAGE", 0.75),
            ("PII_DETECTION_RATE", 0.5),
        ],
    );

    // Applying the schema again keeps the loaded rows.
    db.apply_schema();
    assert_eq!(db.count("SOCIAL_POSTS"), 4);
}

#[test]
fn rows_round_trip_with_types_and_replays_create_no_second_row() {
    let (_f, config) = start();
    let db = Db::new(&config);
    db.apply_schema();
    let sink = SnowflakeSink::connect(&config).expect("connect");
    let mut writer = sink.writer(Table::SocialPosts);
    let rows = social_rows(0, 0, 300);
    // The encoder may hand NDJSON; the writer re-frames it.
    let batches = vec![
        batch(0, &rows[..150], Framing::JSON_ARRAY),
        batch(1, &rows[150..], Framing::NDJSON),
        batch(2, &rows[100..200], Framing::JSON_ARRAY),
    ];
    let done = drive(&mut writer, batches.clone(), Duration::from_secs(60));
    for c in &done {
        assert!(c.result.as_ref().is_ok_and(|o| o.rejected.is_empty()), "{:?}", c.result);
    }
    assert_eq!(db.count("SOCIAL_POSTS"), 300);
    drive(&mut writer, batches, Duration::from_secs(60));
    assert_eq!(db.count("SOCIAL_POSTS"), 300, "replaying every batch adds no row");

    let row = &db.query(
        "SELECT POST_ID, CONTENT, LIKES_COUNT, HASHTAGS, POSTED_AT, CATEGORY_CONFIDENCE, IS_WEEKEND, \
         WEATHER_CONDITION, RAW_RECORD:likesCount::INT AS RAW_LIKES, ARRAY_SIZE(PII_FIELDS) AS PII_N, KAFKA_OFFSET \
         FROM MILLIONX.RAW_DATA.SOCIAL_POSTS WHERE POST_ID = 'S-0-000000042'",
    )[0];
    assert_eq!(text(&row["CONTENT"]), "আজ ঢাকায় খুব গরম! Rice Cooker কিনলাম [PHONE]", "Bangla text intact");
    assert_eq!(num(&row["LIKES_COUNT"]), 10.0);
    let tags: Value = serde_json::from_str(&text(&row["HASHTAGS"])).expect("array JSON");
    assert_eq!(tags, json!(["#deal", "#dhaka"]));
    assert!(text(&row["POSTED_AT"]).starts_with("2025-03-01"), "{}", row["POSTED_AT"]);
    assert_eq!(num(&row["CATEGORY_CONFIDENCE"]), 0.8);
    assert_eq!(row["IS_WEEKEND"], Value::Bool(true));
    assert_eq!(row["WEATHER_CONDITION"], Value::Null, "JSON null loads as NULL");
    assert_eq!((num(&row["RAW_LIKES"]), num(&row["PII_N"]), num(&row["KAFKA_OFFSET"])), (10.0, 3.0, 42.0));
    let m = sink.metrics();
    assert_eq!(m.rows, 800);
    assert_eq!(m.batches, 6);
}

#[test]
fn rejected_rows_go_to_dead_letters_with_snowflake_code_and_the_rest_is_written() {
    let (_f, config) = start();
    let db = Db::new(&config);
    db.apply_schema();
    let sink = SnowflakeSink::connect(&config).expect("connect");
    let mut rows = social_rows(0, 0, 20);
    rows[7].1["LIKES_COUNT"] = json!("many");
    rows[13].1["POST_ID"] = Value::Null;
    let done = drive(
        &mut sink.writer(Table::SocialPosts),
        vec![batch(0, &rows, Framing::JSON_ARRAY)],
        Duration::from_secs(60),
    );
    let outcome = done[0].result.as_ref().expect("batch completes");
    let got: Vec<(usize, &str)> = outcome.rejected.iter().map(|r| (r.index, r.reason.as_str())).collect();
    // fakesnow reports a failed cast as 100035 (Snowflake: 100038) and a NULL key as 100072.
    assert_eq!(got, vec![(7, "sink_rejected:snowflake:100035"), (13, "sink_rejected:snowflake:100072")]);
    assert!(outcome.rejected[0].message.contains("many"), "{}", outcome.rejected[0].message);
    assert_eq!(db.count("SOCIAL_POSTS"), 18);
    assert_eq!(sink.metrics().rejected, 2);
}

#[test]
fn a_batch_resent_after_a_lost_response_is_applied_once() {
    let (f, mut config) = start();
    let db = Db::new(&config);
    db.apply_schema();
    // The proxy forwards the first MERGE to the emulator and then cuts the connection before the answer
    // arrives: the statement ran, the client saw a network failure and sends the batch again.
    let proxy = millionx_snowflake_testing::DropResponseProxy::start(&f.url(), "MERGE INTO").expect("proxy");
    config.host = Some(proxy.url());
    let sink = SnowflakeSink::connect(&config).expect("connect");
    let rows = social_rows(3, 0, 50);
    let done = drive(
        &mut sink.writer(Table::SocialPosts),
        vec![batch(0, &rows, Framing::JSON_ARRAY)],
        Duration::from_secs(60),
    );
    let outcome = done[0].result.as_ref().expect("written after a retry");
    assert_eq!(proxy.dropped(), 1, "one response was lost");
    assert!(outcome.retries >= 1, "{outcome:?}");
    assert_eq!(db.count("SOCIAL_POSTS"), 50);
}

#[test]
fn an_emulator_outage_mid_load_is_retried_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut f = Fakesnow::start_persistent(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let config = f.config();
    Db::new(&config).apply_schema();
    let sink = SnowflakeSink::connect(&config).expect("connect");
    let mut writer = sink.writer(Table::SocialPosts);
    let batches: Vec<_> =
        (0..20u64).map(|i| batch(i, &social_rows(1, i * 100, (i + 1) * 100), Framing::JSON_ARRAY)).collect();
    let (first, rest) = batches.split_at(5);
    let done = drive(&mut writer, first.to_vec(), Duration::from_secs(60));
    for c in &done {
        assert!(c.result.is_ok(), "{:?}", c.result);
    }
    // Kill the emulator with batches in flight; bring it back 3 s later.
    for b in rest.iter().take(writer.max_in_flight()) {
        writer.submit(b.clone());
    }
    f.kill();
    std::thread::sleep(Duration::from_secs(3));
    f.restart().unwrap_or_else(|e| panic!("{e}"));
    let mut done = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while writer.in_flight() > 0 {
        done.extend(writer.poll());
        assert!(std::time::Instant::now() < deadline, "in-flight batches never completed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let remaining = rest[writer.max_in_flight()..].to_vec();
    done.extend(drive(&mut writer, remaining, Duration::from_secs(90)));
    assert!(done.iter().all(|c| c.result.is_ok()), "{:?}", done.iter().map(|c| &c.result).collect::<Vec<_>>());
    assert_eq!(Db::new(&config).count("SOCIAL_POSTS"), 2000, "every row is there exactly once");
    assert!(sink.metrics().retries > 0, "the outage was retried");
}
