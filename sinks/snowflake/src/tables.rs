//! The four `MILLIONX.RAW_DATA` tables: columns (the encoder's JSON keys), their Snowflake types, merge
//! keys, and the per-batch `MERGE` statement. Must match `ops/snowflake/schema-setup.sql` (a test checks).

/// Snowflake type of a column, as the MERGE casts the JSON value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// `VARCHAR`.
    Varchar,
    /// `NUMBER(38,0)`.
    Integer,
    /// `NUMBER(p,2)`: money, BDT.
    Money,
    /// `FLOAT`.
    Float,
    /// `BOOLEAN`.
    Boolean,
    /// `TIMESTAMP_TZ` from an RFC 3339 string.
    TimestampTz,
    /// `ARRAY`.
    Array,
    /// `VARIANT` (any JSON value).
    Variant,
}

impl ColumnType {
    /// The cast applied to `value:"COL"` in the MERGE source (empty for VARIANT).
    fn cast(self) -> &'static str {
        match self {
            ColumnType::Varchar => "::VARCHAR",
            ColumnType::Integer => "::NUMBER(38,0)",
            ColumnType::Money => "::NUMBER(16,2)",
            ColumnType::Float => "::FLOAT",
            ColumnType::Boolean => "::BOOLEAN",
            ColumnType::TimestampTz => "::TIMESTAMP_TZ",
            ColumnType::Array => "::ARRAY",
            ColumnType::Variant => "",
        }
    }

    /// Whether a JSON value fits this column (null always does; the key's NOT NULL is checked apart).
    pub fn accepts(self, v: &serde_json::Value) -> bool {
        use serde_json::Value as V;
        match (self, v) {
            (_, V::Null) | (ColumnType::Variant, _) => true,
            (ColumnType::Varchar | ColumnType::TimestampTz, V::String(_)) => true,
            // A whole number written as a float (`1018.0`) converts to NUMBER(38,0) without loss.
            (ColumnType::Integer, V::Number(n)) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            (ColumnType::Money | ColumnType::Float, V::Number(_)) => true,
            (ColumnType::Boolean, V::Bool(_)) => true,
            (ColumnType::Array, V::Array(_)) => true,
            _ => false,
        }
    }
}

use ColumnType::{Array, Boolean, Float, Integer, Money, TimestampTz, Varchar, Variant};

/// A destination table: the encoder's own type (`millionx_sink_format::snowflake::Table`), so the writer
/// and the encoder cannot disagree on names or merge keys.
pub use millionx_sink_format::snowflake::Table;

const SOCIAL_POSTS: &[(&str, ColumnType)] = &[
    ("POST_ID", Varchar),
    ("PLATFORM", Varchar),
    ("CONTENT", Varchar),
    ("AUTHOR_HASH", Varchar),
    ("LIKES_COUNT", Integer),
    ("COMMENTS_COUNT", Integer),
    ("SHARES_COUNT", Integer),
    ("ENGAGEMENT_COUNT", Integer),
    ("HASHTAGS", Array),
    ("CITY", Varchar),
    ("LANGUAGE", Varchar),
    ("POSTED_AT", TimestampTz),
    ("PRODUCT_CATEGORY", Varchar),
    ("CATEGORY_CONFIDENCE", Float),
    ("WEATHER_CONDITION", Varchar),
    ("TEMPERATURE", Float),
    ("HUMIDITY", Integer),
    ("IS_WEEKEND", Boolean),
    ("HOUR_OF_DAY", Integer),
    ("EMBEDDING_MODEL", Varchar),
    ("ANONYMIZED", Boolean),
    ("PII_FIELDS", Array),
    ("PII_DETECTED", Boolean),
    ("ENRICHED", Boolean),
    ("RAW_RECORD", Variant),
    ("KAFKA_TOPIC", Varchar),
    ("KAFKA_PARTITION", Integer),
    ("KAFKA_OFFSET", Integer),
    ("INGESTED_AT", TimestampTz),
];

const MARKET_ORDERS: &[(&str, ColumnType)] = &[
    ("ORDER_ID", Varchar),
    ("PLATFORM", Varchar),
    ("CUSTOMER_ID_HASH", Varchar),
    ("PRODUCT_ID", Varchar),
    ("PRODUCT_NAME", Varchar),
    ("PRODUCT_CATEGORY", Varchar),
    ("CATEGORY_CONFIDENCE", Float),
    ("QUANTITY", Integer),
    ("UNIT_PRICE", Money),
    ("TOTAL_PRICE", Money),
    ("CURRENCY", Varchar),
    ("STATUS", Varchar),
    ("PAYMENT_METHOD", Varchar),
    ("PAYMENT_STATUS", Varchar),
    ("SHIPPING_REGION", Varchar),
    ("SHIPPING_CITY", Varchar),
    ("ORDERED_AT", TimestampTz),
    ("DAY_OF_WEEK", Varchar),
    ("WEATHER_CONDITION", Varchar),
    ("TEMPERATURE", Float),
    ("HUMIDITY", Integer),
    ("IS_WEEKEND", Boolean),
    ("HOUR_OF_DAY", Integer),
    ("EMBEDDING_MODEL", Varchar),
    ("ANONYMIZED", Boolean),
    ("PII_FIELDS", Array),
    ("PII_DETECTED", Boolean),
    ("ENRICHED", Boolean),
    ("RAW_RECORD", Variant),
    ("KAFKA_TOPIC", Varchar),
    ("KAFKA_PARTITION", Integer),
    ("KAFKA_OFFSET", Integer),
    ("INGESTED_AT", TimestampTz),
];

const PRICE_HISTORY: &[(&str, ColumnType)] = &[
    ("ORDER_ID", Varchar),
    ("PRODUCT_ID", Varchar),
    ("PRODUCT_NAME", Varchar),
    ("PRODUCT_CATEGORY", Varchar),
    ("PLATFORM", Varchar),
    ("UNIT_PRICE", Money),
    ("CURRENCY", Varchar),
    ("CITY", Varchar),
    ("RECORDED_AT", TimestampTz),
    ("INGESTED_AT", TimestampTz),
];

const WEATHER_LOGS: &[(&str, ColumnType)] = &[
    ("CITY", Varchar),
    ("COUNTRY", Varchar),
    ("LATITUDE", Float),
    ("LONGITUDE", Float),
    ("TIMESTAMP", TimestampTz),
    ("WEATHER_CONDITION", Varchar),
    ("WEATHER_DESCRIPTION", Varchar),
    ("WEATHER_ICON", Varchar),
    ("TEMPERATURE", Float),
    ("FEELS_LIKE", Float),
    ("TEMPERATURE_MIN", Float),
    ("TEMPERATURE_MAX", Float),
    ("HUMIDITY", Integer),
    ("PRESSURE", Float),
    ("VISIBILITY", Float),
    ("WIND_SPEED", Float),
    ("WIND_DEGREE", Float),
    ("CLOUDS", Integer),
    ("SUNRISE", TimestampTz),
    ("SUNSET", TimestampTz),
    ("RAW_RECORD", Variant),
    ("KAFKA_TOPIC", Varchar),
    ("KAFKA_PARTITION", Integer),
    ("KAFKA_OFFSET", Integer),
    ("INGESTED_AT", TimestampTz),
];

/// What the sink knows of a table beyond its name and merge key: column types and the MERGE statement.
pub trait TableSchema: Copy {
    /// Columns in table order: (name = the encoder's JSON key, type).
    fn columns(self) -> &'static [(&'static str, ColumnType)];

    /// The upsert for one batch, with a single `?` bind: the batch as a JSON array of row objects.
    ///
    /// `MERGE INTO db.schema.T t USING (SELECT * FROM (SELECT index AS _ROW_INDEX, value:"COL"::TYPE AS COL, …
    /// FROM LATERAL FLATTEN(input => PARSE_JSON(?))) QUALIFY ROW_NUMBER() OVER (PARTITION BY key ORDER BY
    /// _ROW_INDEX DESC) = 1) s ON key match WHEN MATCHED THEN UPDATE SET every other column WHEN NOT MATCHED
    /// THEN INSERT all columns`. A key that appears twice in one batch keeps its last row (Snowflake rejects a
    /// MERGE whose source matches a target row twice); replaying a batch updates the same rows and inserts none.
    fn merge_sql(self, database: &str, schema: &str) -> String;

    /// The table with this name (case-insensitive).
    fn from_name(name: &str) -> Option<Table>;
}

impl TableSchema for Table {
    fn columns(self) -> &'static [(&'static str, ColumnType)] {
        match self {
            Table::SocialPosts => SOCIAL_POSTS,
            Table::MarketOrders => MARKET_ORDERS,
            Table::PriceHistory => PRICE_HISTORY,
            Table::WeatherLogs => WEATHER_LOGS,
        }
    }

    fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name))
    }

    fn merge_sql(self, database: &str, schema: &str) -> String {
        let cols = self.columns();
        let key = self.key_columns();
        let select =
            cols.iter().map(|(c, t)| format!("value:\"{c}\"{} AS \"{c}\"", t.cast())).collect::<Vec<_>>().join(", ");
        let partition = key.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ");
        let on = key.iter().map(|k| format!("t.\"{k}\" = s.\"{k}\"")).collect::<Vec<_>>().join(" AND ");
        let update = cols
            .iter()
            .filter(|(c, _)| !key.contains(c))
            .map(|(c, _)| format!("t.\"{c}\" = s.\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let names = cols.iter().map(|(c, _)| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
        let values = cols.iter().map(|(c, _)| format!("s.\"{c}\"")).collect::<Vec<_>>().join(", ");
        format!(
            "MERGE INTO {database}.{schema}.{table} t USING (SELECT * FROM (SELECT index AS \"_ROW_INDEX\", \
             {select} FROM LATERAL FLATTEN(input => PARSE_JSON(?))) QUALIFY ROW_NUMBER() OVER (PARTITION BY \
             {partition} ORDER BY \"_ROW_INDEX\" DESC) = 1) s ON {on} WHEN MATCHED THEN UPDATE SET {update} WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})",
            table = self.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every column of every table appears in the DDL, in order, and nothing else does.
    #[test]
    fn columns_match_the_ddl() {
        let ddl = crate::schema::SCHEMA_SQL;
        for table in Table::ALL {
            let start = ddl
                .find(&format!("CREATE TABLE IF NOT EXISTS MILLIONX.RAW_DATA.{} (", table.name()))
                .expect("table in DDL");
            let body = &ddl[start..];
            let body = &body[body.find('(').expect("(") + 1..body.find("\n)").expect(")")];
            let names: Vec<&str> =
                body.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| !w.is_empty()).collect();
            let expected: Vec<&str> = table.columns().iter().map(|(c, _)| *c).collect();
            assert_eq!(names, expected, "{}", table.name());
        }
    }

    #[test]
    fn merge_statement_shape() {
        let sql = Table::WeatherLogs.merge_sql("MILLIONX", "RAW_DATA");
        assert!(sql.starts_with(
            "MERGE INTO MILLIONX.RAW_DATA.WEATHER_LOGS t USING (SELECT * FROM (SELECT index AS \"_ROW_INDEX\", \
             value:\"CITY\"::VARCHAR AS \"CITY\""
        ));
        assert!(sql.contains("ON t.\"CITY\" = s.\"CITY\" AND t.\"TIMESTAMP\" = s.\"TIMESTAMP\""));
        assert!(!sql.contains("t.\"CITY\" = s.\"CITY\","), "keys are not updated");
        assert_eq!(sql.matches('?').count(), 1);
        assert!(Table::SocialPosts.merge_sql("D", "S").contains("value:\"HASHTAGS\"::ARRAY AS \"HASHTAGS\""));
        assert_eq!(Table::from_name("price_history"), Some(Table::PriceHistory));
    }

    #[test]
    fn merge_keys_are_columns() {
        for t in Table::ALL {
            for k in t.key_columns() {
                assert!(t.columns().iter().any(|(c, _)| c == k), "{}: {k}", t.name());
            }
        }
    }

    #[test]
    fn json_types_fit_columns() {
        use serde_json::json;
        assert!(Integer.accepts(&json!(3)));
        assert!(!Integer.accepts(&json!("many")));
        assert!(!Integer.accepts(&json!(1.5)));
        assert!(Integer.accepts(&json!(1018.0)));
        assert!(Money.accepts(&json!(12.5)));
        assert!(Array.accepts(&json!(["#deal"])));
        assert!(Varchar.accepts(&serde_json::Value::Null));
        assert!(!Boolean.accepts(&json!("true")));
    }
}
