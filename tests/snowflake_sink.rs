//! `millionx run --sink snowflake` into the fakesnow emulator (started here from the venv that
//! `.ci/setup.d/30-fakesnow.sh` installs; the test fails without it): the tables hold row for row what
//! the file sink writes, and a replay adds no row.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use millionx_sink_snowflake::sql::client::SqlClient;
use millionx_sink_snowflake::{Metrics, SnowflakeConfig};
use millionx_snowflake_testing::Fakesnow;
use serde_json::Value;

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// The rows of `sql`, each as the text of `cols` in that order.
fn table_rows(config: &SnowflakeConfig, sql: &str, cols: &[&str]) -> BTreeSet<Vec<String>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = SqlClient::new(
        config,
        config.resolve_credentials(&millionx_dataflow::config::Env::process()).unwrap(),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    let rows = rt.block_on(client.execute_once(sql, None)).unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter().map(|r| cols.iter().map(|c| text(&r[*c])).collect()).collect()
}

#[test]
fn a_run_into_snowflake_matches_the_file_sink_row_for_row_and_replays_add_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("db")).unwrap();
    let emulator = Fakesnow::start_persistent(&dir.path().join("db")).unwrap_or_else(|e| panic!("{e}"));
    let input = dir.path().join("in");
    run_ok(&["gen", "--out", input.to_str().unwrap(), "--social", "1500", "--market", "1500", "--hours", "12"]);
    let password = dir.path().join("password");
    std::fs::write(&password, "test\n").unwrap();
    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        format!(
            "[snowflake]\naccount = \"fakesnow\"\nhost = \"{}\"\nuser = \"millionx\"\n[snowflake.auth]\ntype = \"password\"\n\
             password = {{ file = \"{}\" }}\n",
            emulator.url(),
            password.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    run_ok(&["snowflake", "schema", "--apply", "--config", cfg]);

    let (files_out, sf_out) = (dir.path().join("files"), dir.path().join("sf"));
    run_ok(&["run", "--embed", "off", "--input", input.to_str().unwrap(), "--out", files_out.to_str().unwrap()]);
    let into_snowflake = || {
        run_ok(&[
            "run",
            "--embed",
            "off",
            "--input",
            input.to_str().unwrap(),
            "--out",
            sf_out.to_str().unwrap(),
            "--config",
            cfg,
            "--sink",
            "snowflake",
            "-w",
            "2",
        ])
    };
    into_snowflake();
    assert!(files(&sf_out.join("snowflake")).is_empty(), "no Snowflake files when the service is the sink");

    let sf_config = millionx::config::RunConfig::from_file(&config, &millionx_dataflow::config::Env::process())
        .unwrap()
        .snowflake
        .unwrap();
    let cols =
        ["POST_ID", "AUTHOR_HASH", "CONTENT", "LIKES_COUNT", "PRODUCT_CATEGORY", "WEATHER_CONDITION", "KAFKA_OFFSET"];
    let expected: BTreeSet<Vec<String>> = ndjson(&files_out.join("snowflake/SOCIAL_POSTS"))
        .iter()
        .map(|r| cols.iter().map(|c| text(&r[*c])).collect())
        .collect();
    let query = format!("SELECT {} FROM MILLIONX.RAW_DATA.SOCIAL_POSTS", cols.join(", "));
    let got = table_rows(&sf_config, &query, &cols);
    assert_eq!(got.len(), expected.len());
    assert_eq!(got.difference(&expected).next(), None, "rows differ from the file sink");
    let orders: BTreeSet<Vec<String>> = ndjson(&files_out.join("snowflake/MARKET_ORDERS"))
        .iter()
        .map(|r| vec![text(&r["ORDER_ID"]), text(&r["CUSTOMER_ID_HASH"]), text(&r["QUANTITY"])])
        .collect();
    let order_cols = ["ORDER_ID", "CUSTOMER_ID_HASH", "QUANTITY"];
    let got = table_rows(
        &sf_config,
        "SELECT ORDER_ID, CUSTOMER_ID_HASH, QUANTITY FROM MILLIONX.RAW_DATA.MARKET_ORDERS",
        &order_cols,
    );
    assert_eq!(got, orders);

    let counts = "SELECT (SELECT COUNT(*) FROM MILLIONX.RAW_DATA.SOCIAL_POSTS) AS S, (SELECT COUNT(*) FROM MILLIONX.RAW_DATA.MARKET_ORDERS) AS M, \
                  (SELECT COUNT(*) FROM MILLIONX.RAW_DATA.PRICE_HISTORY) AS P, (SELECT COUNT(*) FROM MILLIONX.RAW_DATA.WEATHER_LOGS) AS W";
    let before = table_rows(&sf_config, counts, &["S", "M", "P", "W"]);
    assert_eq!(before.iter().next().map(|r| r[0].clone()), Some(expected.len().to_string()));
    into_snowflake();
    assert_eq!(table_rows(&sf_config, counts, &["S", "M", "P", "W"]), before, "a replay adds no row");
}
