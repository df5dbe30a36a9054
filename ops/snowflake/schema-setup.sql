-- MillionX Snowflake schema: MILLIONX.RAW_DATA tables, views, warehouse, roles and grants.
--
-- Idempotent: every statement is CREATE ... IF NOT EXISTS or CREATE OR REPLACE, so applying it twice is
-- harmless and never drops loaded rows. Apply with `millionx snowflake schema --apply` (statements run one at
-- a time, in file order) or paste it into a worksheet as a role that may create warehouses and roles
-- (SYSADMIN for objects, SECURITYADMIN for roles and grants; ACCOUNTADMIN for IMPORTED PRIVILEGES).
--
-- Column names are exactly the keys of the rows the MillionX encoder writes (one JSON object per row; a null
-- may be written as JSON null or left out). Times are TIMESTAMP_TZ loaded from RFC 3339 UTC strings; prices are
-- BDT; temperatures °C; humidity %. Merge keys: SOCIAL_POSTS.POST_ID, MARKET_ORDERS.ORDER_ID,
-- PRICE_HISTORY.ORDER_ID, WEATHER_LOGS (CITY, TIMESTAMP).

-- Warehouse -------------------------------------------------------------------------------------------------
CREATE WAREHOUSE IF NOT EXISTS MILLIONX_WH
  WITH WAREHOUSE_SIZE = 'XSMALL'
       AUTO_SUSPEND = 60
       AUTO_RESUME = TRUE
       INITIALLY_SUSPENDED = TRUE
  COMMENT = 'MillionX loads and dashboards; X-Small, suspends after 60 s idle';

-- Database and schema ---------------------------------------------------------------------------------------
CREATE DATABASE IF NOT EXISTS MILLIONX
  COMMENT = 'MillionX e-commerce intelligence platform (Bangladesh)';

CREATE SCHEMA IF NOT EXISTS MILLIONX.RAW_DATA
  COMMENT = 'Enriched, anonymised stream records loaded by the MillionX Snowflake sink';

-- Tables ----------------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS MILLIONX.RAW_DATA.SOCIAL_POSTS (
  POST_ID             VARCHAR       NOT NULL COMMENT 'Source post id (merge key)',
  PLATFORM            VARCHAR                COMMENT 'facebook, instagram, tiktok, youtube',
  CONTENT             VARCHAR                COMMENT 'Post text with phone numbers and e-mail addresses redacted',
  AUTHOR_HASH         VARCHAR                COMMENT 'Lowercase hex HMAC-SHA256 of the author id',
  LIKES_COUNT         NUMBER(38,0)           COMMENT 'Likes',
  COMMENTS_COUNT      NUMBER(38,0)           COMMENT 'Comments',
  SHARES_COUNT        NUMBER(38,0)           COMMENT 'Shares',
  ENGAGEMENT_COUNT    NUMBER(38,0)           COMMENT 'Likes + comments + shares',
  HASHTAGS            ARRAY                  COMMENT 'Hashtags as posted',
  CITY                VARCHAR                COMMENT 'One of the 8 divisional cities',
  LANGUAGE            VARCHAR                COMMENT 'Language code, e.g. bn, en',
  POSTED_AT           TIMESTAMP_TZ           COMMENT 'Event time (UTC)',
  PRODUCT_CATEGORY    VARCHAR                COMMENT 'Catalog category or unknown',
  CATEGORY_CONFIDENCE FLOAT                  COMMENT 'Category confidence 0..1',
  WEATHER_CONDITION   VARCHAR                COMMENT 'Weather at post time (as-of join, <= 3 h old)',
  TEMPERATURE         FLOAT                  COMMENT 'Temperature, degrees C',
  HUMIDITY            NUMBER(38,0)           COMMENT 'Relative humidity, %',
  IS_WEEKEND          BOOLEAN                COMMENT 'Friday or Saturday in Asia/Dhaka',
  HOUR_OF_DAY         NUMBER(38,0)           COMMENT 'Hour 0-23 in Asia/Dhaka',
  EMBEDDING_MODEL     VARCHAR                COMMENT 'Embedding model name; null when not embedded',
  ANONYMIZED          BOOLEAN                COMMENT 'Personal data removed',
  PII_FIELDS          ARRAY                  COMMENT 'Fields dropped or redacted',
  PII_DETECTED        BOOLEAN                COMMENT 'Free text held a phone number or e-mail address',
  ENRICHED            BOOLEAN                COMMENT 'Weather context found',
  RAW_RECORD          VARIANT                COMMENT 'The anonymised raw record',
  KAFKA_TOPIC         VARCHAR                COMMENT 'Source topic',
  KAFKA_PARTITION     NUMBER(38,0)           COMMENT 'Source partition',
  KAFKA_OFFSET        NUMBER(38,0)           COMMENT 'Source offset',
  INGESTED_AT         TIMESTAMP_TZ           COMMENT 'When the sink wrote the row (UTC)'
)
CLUSTER BY (TO_DATE(POSTED_AT), PLATFORM)
COMMENT = 'Social posts, one row per post id';

CREATE TABLE IF NOT EXISTS MILLIONX.RAW_DATA.MARKET_ORDERS (
  ORDER_ID            VARCHAR       NOT NULL COMMENT 'Source order id (merge key)',
  PLATFORM            VARCHAR                COMMENT 'daraz, shopify, chaldal, pickaboo',
  CUSTOMER_ID_HASH    VARCHAR                COMMENT 'Lowercase hex HMAC-SHA256 of the customer id',
  PRODUCT_ID          VARCHAR                COMMENT 'Catalog product id',
  PRODUCT_NAME        VARCHAR                COMMENT 'Product name',
  PRODUCT_CATEGORY    VARCHAR                COMMENT 'Catalog category',
  CATEGORY_CONFIDENCE FLOAT                  COMMENT 'Category confidence 0..1',
  QUANTITY            NUMBER(38,0)           COMMENT 'Units ordered',
  UNIT_PRICE          NUMBER(14,2)           COMMENT 'Unit price, BDT',
  TOTAL_PRICE         NUMBER(16,2)           COMMENT 'Order total, BDT',
  CURRENCY            VARCHAR                COMMENT 'ISO 4217 code (BDT)',
  STATUS              VARCHAR                COMMENT 'pending, confirmed, shipped, delivered, cancelled, returned',
  PAYMENT_METHOD      VARCHAR                COMMENT 'bkash, nagad, cod, card, rocket',
  PAYMENT_STATUS      VARCHAR                COMMENT 'Payment status',
  SHIPPING_REGION     VARCHAR                COMMENT 'Division',
  SHIPPING_CITY       VARCHAR                COMMENT 'One of the 8 divisional cities',
  ORDERED_AT          TIMESTAMP_TZ           COMMENT 'Event time (UTC)',
  DAY_OF_WEEK         VARCHAR                COMMENT 'Day name in Asia/Dhaka',
  WEATHER_CONDITION   VARCHAR                COMMENT 'Weather at order time (as-of join, <= 3 h old)',
  TEMPERATURE         FLOAT                  COMMENT 'Temperature, degrees C',
  HUMIDITY            NUMBER(38,0)           COMMENT 'Relative humidity, %',
  IS_WEEKEND          BOOLEAN                COMMENT 'Friday or Saturday in Asia/Dhaka',
  HOUR_OF_DAY         NUMBER(38,0)           COMMENT 'Hour 0-23 in Asia/Dhaka',
  EMBEDDING_MODEL     VARCHAR                COMMENT 'Embedding model name; null when not embedded',
  ANONYMIZED          BOOLEAN                COMMENT 'Personal data removed',
  PII_FIELDS          ARRAY                  COMMENT 'Fields dropped or redacted',
  PII_DETECTED        BOOLEAN                COMMENT 'Free text held a phone number or e-mail address',
  ENRICHED            BOOLEAN                COMMENT 'Weather context found',
  RAW_RECORD          VARIANT                COMMENT 'The anonymised raw record',
  KAFKA_TOPIC         VARCHAR                COMMENT 'Source topic',
  KAFKA_PARTITION     NUMBER(38,0)           COMMENT 'Source partition',
  KAFKA_OFFSET        NUMBER(38,0)           COMMENT 'Source offset',
  INGESTED_AT         TIMESTAMP_TZ           COMMENT 'When the sink wrote the row (UTC)'
)
CLUSTER BY (TO_DATE(ORDERED_AT), SHIPPING_REGION)
COMMENT = 'Marketplace orders, one row per order id';

CREATE TABLE IF NOT EXISTS MILLIONX.RAW_DATA.PRICE_HISTORY (
  ORDER_ID            VARCHAR       NOT NULL COMMENT 'Order the price was observed in (merge key)',
  PRODUCT_ID          VARCHAR                COMMENT 'Catalog product id',
  PRODUCT_NAME        VARCHAR                COMMENT 'Product name',
  PRODUCT_CATEGORY    VARCHAR                COMMENT 'Catalog category',
  PLATFORM            VARCHAR                COMMENT 'Marketplace',
  UNIT_PRICE          NUMBER(14,2)           COMMENT 'Unit price, BDT',
  CURRENCY            VARCHAR                COMMENT 'ISO 4217 code (BDT)',
  CITY                VARCHAR                COMMENT 'Shipping city',
  RECORDED_AT         TIMESTAMP_TZ           COMMENT 'Order time (UTC)',
  INGESTED_AT         TIMESTAMP_TZ           COMMENT 'When the sink wrote the row (UTC)'
)
CLUSTER BY (PRODUCT_ID, TO_DATE(RECORDED_AT))
COMMENT = 'Unit price observations, one row per valid order';

CREATE TABLE IF NOT EXISTS MILLIONX.RAW_DATA.WEATHER_LOGS (
  CITY                VARCHAR       NOT NULL COMMENT 'City (merge key with TIMESTAMP)',
  COUNTRY             VARCHAR                COMMENT 'ISO 3166 country code',
  LATITUDE            FLOAT                  COMMENT 'Degrees',
  LONGITUDE           FLOAT                  COMMENT 'Degrees',
  TIMESTAMP           TIMESTAMP_TZ  NOT NULL COMMENT 'Reading time (UTC; merge key with CITY)',
  WEATHER_CONDITION   VARCHAR                COMMENT 'Condition, e.g. Rain',
  WEATHER_DESCRIPTION VARCHAR                COMMENT 'Description, e.g. light rain',
  WEATHER_ICON        VARCHAR                COMMENT 'OpenWeatherMap icon code',
  TEMPERATURE         FLOAT                  COMMENT 'Degrees C',
  FEELS_LIKE          FLOAT                  COMMENT 'Degrees C',
  TEMPERATURE_MIN     FLOAT                  COMMENT 'Degrees C',
  TEMPERATURE_MAX     FLOAT                  COMMENT 'Degrees C',
  HUMIDITY            NUMBER(38,0)           COMMENT 'Relative humidity, %',
  PRESSURE            FLOAT                  COMMENT 'hPa',
  VISIBILITY          FLOAT                  COMMENT 'Metres',
  WIND_SPEED          FLOAT                  COMMENT 'm/s',
  WIND_DEGREE         FLOAT                  COMMENT 'Degrees',
  CLOUDS              NUMBER(38,0)           COMMENT 'Cloud cover, %',
  SUNRISE             TIMESTAMP_TZ           COMMENT 'UTC',
  SUNSET              TIMESTAMP_TZ           COMMENT 'UTC',
  RAW_RECORD          VARIANT                COMMENT 'The reading as published',
  KAFKA_TOPIC         VARCHAR                COMMENT 'Source topic',
  KAFKA_PARTITION     NUMBER(38,0)           COMMENT 'Source partition',
  KAFKA_OFFSET        NUMBER(38,0)           COMMENT 'Source offset',
  INGESTED_AT         TIMESTAMP_TZ           COMMENT 'When the sink wrote the row (UTC)'
)
CLUSTER BY (CITY, TO_DATE(TIMESTAMP))
COMMENT = 'Hourly weather readings, one row per (city, timestamp)';

-- Views -----------------------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW MILLIONX.RAW_DATA.VW_RECENT_SOCIAL_TRENDS
  COMMENT = 'Social engagement over the last 7 days by platform, category and city'
AS
SELECT PLATFORM,
       PRODUCT_CATEGORY,
       CITY,
       COUNT(*)                         AS POST_COUNT,
       SUM(LIKES_COUNT)                 AS TOTAL_LIKES,
       SUM(COMMENTS_COUNT)              AS TOTAL_COMMENTS,
       SUM(SHARES_COUNT)                AS TOTAL_SHARES,
       SUM(ENGAGEMENT_COUNT)            AS TOTAL_ENGAGEMENT,
       ROUND(AVG(ENGAGEMENT_COUNT), 2)  AS AVG_ENGAGEMENT,
       MAX(POSTED_AT)                   AS LAST_POSTED_AT
FROM MILLIONX.RAW_DATA.SOCIAL_POSTS
WHERE POSTED_AT >= DATEADD('day', -7, CURRENT_TIMESTAMP())
GROUP BY PLATFORM, PRODUCT_CATEGORY, CITY;

CREATE OR REPLACE VIEW MILLIONX.RAW_DATA.VW_PRODUCT_DEMAND_BY_REGION
  COMMENT = 'Demand over the last 30 days by shipping region and category (cancelled and returned orders excluded)'
AS
SELECT SHIPPING_REGION,
       PRODUCT_CATEGORY,
       COUNT(*)                    AS ORDER_COUNT,
       SUM(QUANTITY)               AS TOTAL_QUANTITY,
       SUM(TOTAL_PRICE)            AS TOTAL_REVENUE_BDT,
       ROUND(AVG(UNIT_PRICE), 2)   AS AVG_UNIT_PRICE_BDT
FROM MILLIONX.RAW_DATA.MARKET_ORDERS
WHERE ORDERED_AT >= DATEADD('day', -30, CURRENT_TIMESTAMP())
  AND STATUS NOT IN ('cancelled', 'returned')
GROUP BY SHIPPING_REGION, PRODUCT_CATEGORY;

CREATE OR REPLACE VIEW MILLIONX.RAW_DATA.VW_WEATHER_ORDER_CORRELATION
  COMMENT = 'Orders by weather condition and category (weather-enriched orders only)'
AS
SELECT WEATHER_CONDITION,
       PRODUCT_CATEGORY,
       COUNT(*)                     AS ORDER_COUNT,
       SUM(QUANTITY)                AS TOTAL_QUANTITY,
       ROUND(AVG(TEMPERATURE), 1)   AS AVG_TEMPERATURE_C,
       ROUND(AVG(HUMIDITY), 1)      AS AVG_HUMIDITY_PCT,
       SUM(TOTAL_PRICE)             AS TOTAL_REVENUE_BDT,
       ROUND(AVG(TOTAL_PRICE), 2)   AS AVG_ORDER_VALUE_BDT
FROM MILLIONX.RAW_DATA.MARKET_ORDERS
WHERE ENRICHED = TRUE AND WEATHER_CONDITION IS NOT NULL
GROUP BY WEATHER_CONDITION, PRODUCT_CATEGORY;

CREATE OR REPLACE VIEW MILLIONX.RAW_DATA.VW_PRICE_TRENDS
  COMMENT = 'Daily (UTC) unit price range per product'
AS
SELECT PRODUCT_ID,
       PRODUCT_NAME,
       PRODUCT_CATEGORY,
       TO_DATE(RECORDED_AT)        AS PRICE_DATE,
       COUNT(*)                    AS OBSERVATIONS,
       MIN(UNIT_PRICE)             AS MIN_UNIT_PRICE_BDT,
       MAX(UNIT_PRICE)             AS MAX_UNIT_PRICE_BDT,
       ROUND(AVG(UNIT_PRICE), 2)   AS AVG_UNIT_PRICE_BDT
FROM MILLIONX.RAW_DATA.PRICE_HISTORY
GROUP BY PRODUCT_ID, PRODUCT_NAME, PRODUCT_CATEGORY, TO_DATE(RECORDED_AT);

CREATE OR REPLACE VIEW MILLIONX.RAW_DATA.VW_DAILY_INGESTION_STATS
  COMMENT = 'Rows loaded per table per UTC day, with the mean event-to-load lag in seconds'
AS
SELECT 'SOCIAL_POSTS' AS TABLE_NAME, TO_DATE(INGESTED_AT) AS INGEST_DATE, COUNT(*) AS ROW_COUNT,
       MIN(INGESTED_AT) AS FIRST_INGESTED_AT, MAX(INGESTED_AT) AS LAST_INGESTED_AT,
       ROUND(AVG(DATEDIFF('second', POSTED_AT, INGESTED_AT)), 1) AS AVG_LAG_SECONDS
FROM MILLIONX.RAW_DATA.SOCIAL_POSTS GROUP BY TO_DATE(INGESTED_AT)
UNION ALL
SELECT 'MARKET_ORDERS', TO_DATE(INGESTED_AT), COUNT(*), MIN(INGESTED_AT), MAX(INGESTED_AT),
       ROUND(AVG(DATEDIFF('second', ORDERED_AT, INGESTED_AT)), 1)
FROM MILLIONX.RAW_DATA.MARKET_ORDERS GROUP BY TO_DATE(INGESTED_AT)
UNION ALL
SELECT 'PRICE_HISTORY', TO_DATE(INGESTED_AT), COUNT(*), MIN(INGESTED_AT), MAX(INGESTED_AT),
       ROUND(AVG(DATEDIFF('second', RECORDED_AT, INGESTED_AT)), 1)
FROM MILLIONX.RAW_DATA.PRICE_HISTORY GROUP BY TO_DATE(INGESTED_AT)
UNION ALL
SELECT 'WEATHER_LOGS', TO_DATE(INGESTED_AT), COUNT(*), MIN(INGESTED_AT), MAX(INGESTED_AT),
       ROUND(AVG(DATEDIFF('second', TIMESTAMP, INGESTED_AT)), 1)
FROM MILLIONX.RAW_DATA.WEATHER_LOGS GROUP BY TO_DATE(INGESTED_AT);

-- Credits from ACCOUNT_USAGE (up to ~3 h latency); cost at USD 3.00 per credit (on-demand Enterprise edition,
-- AWS US regions, Snowflake's published price list; change the factor to match the contract).
CREATE OR REPLACE VIEW MILLIONX.RAW_DATA.VW_WAREHOUSE_COST_TRACKING
  COMMENT = 'Daily credits and estimated cost of MILLIONX_WH over the last 30 days'
AS
SELECT WAREHOUSE_NAME,
       TO_DATE(START_TIME)                          AS USAGE_DATE,
       SUM(CREDITS_USED)                            AS CREDITS_USED,
       SUM(CREDITS_USED_COMPUTE)                    AS CREDITS_USED_COMPUTE,
       SUM(CREDITS_USED_CLOUD_SERVICES)             AS CREDITS_USED_CLOUD_SERVICES,
       ROUND(SUM(CREDITS_USED) * 3.00, 2)           AS ESTIMATED_COST_USD
FROM SNOWFLAKE.ACCOUNT_USAGE.WAREHOUSE_METERING_HISTORY
WHERE WAREHOUSE_NAME = 'MILLIONX_WH'
  AND START_TIME >= DATEADD('day', -30, CURRENT_TIMESTAMP())
GROUP BY WAREHOUSE_NAME, TO_DATE(START_TIME);

-- Data quality: records that reached Snowflake without an embedding (no EMBEDDING_MODEL).
CREATE OR REPLACE VIEW MILLIONX.RAW_DATA.VW_DATA_QUALITY_EMBEDDINGS
  COMMENT = 'Missing embeddings per table per UTC load day'
AS
SELECT 'SOCIAL_POSTS' AS TABLE_NAME, TO_DATE(INGESTED_AT) AS INGEST_DATE, COUNT(*) AS TOTAL_ROWS,
       COUNT_IF(EMBEDDING_MODEL IS NULL OR EMBEDDING_MODEL = '') AS MISSING_EMBEDDINGS,
       ROUND(1 - DIV0(COUNT_IF(EMBEDDING_MODEL IS NULL OR EMBEDDING_MODEL = ''), COUNT(*)), 4) AS EMBEDDING_COVERAGE
FROM MILLIONX.RAW_DATA.SOCIAL_POSTS GROUP BY TO_DATE(INGESTED_AT)
UNION ALL
SELECT 'MARKET_ORDERS', TO_DATE(INGESTED_AT), COUNT(*),
       COUNT_IF(EMBEDDING_MODEL IS NULL OR EMBEDDING_MODEL = ''),
       ROUND(1 - DIV0(COUNT_IF(EMBEDDING_MODEL IS NULL OR EMBEDDING_MODEL = ''), COUNT(*)), 4)
FROM MILLIONX.RAW_DATA.MARKET_ORDERS GROUP BY TO_DATE(INGESTED_AT);

-- Data quality: anonymisation coverage and PII detection rate.
CREATE OR REPLACE VIEW MILLIONX.RAW_DATA.VW_DATA_QUALITY_ANONYMIZATION
  COMMENT = 'Anonymisation coverage and PII detection rate per table per UTC load day'
AS
SELECT 'SOCIAL_POSTS' AS TABLE_NAME, TO_DATE(INGESTED_AT) AS INGEST_DATE, COUNT(*) AS TOTAL_ROWS,
       COUNT_IF(ANONYMIZED = TRUE) AS ANONYMIZED_ROWS,
       COUNT_IF(ANONYMIZED IS NULL OR ANONYMIZED = FALSE) AS NOT_ANONYMIZED_ROWS,
       COUNT_IF(PII_DETECTED = TRUE) AS PII_DETECTED_ROWS,
       ROUND(DIV0(COUNT_IF(ANONYMIZED = TRUE), COUNT(*)), 4) AS ANONYMIZATION_COVERAGE,
       ROUND(DIV0(COUNT_IF(PII_DETECTED = TRUE), COUNT(*)), 4) AS PII_DETECTION_RATE
FROM MILLIONX.RAW_DATA.SOCIAL_POSTS GROUP BY TO_DATE(INGESTED_AT)
UNION ALL
SELECT 'MARKET_ORDERS', TO_DATE(INGESTED_AT), COUNT(*),
       COUNT_IF(ANONYMIZED = TRUE),
       COUNT_IF(ANONYMIZED IS NULL OR ANONYMIZED = FALSE),
       COUNT_IF(PII_DETECTED = TRUE),
       ROUND(DIV0(COUNT_IF(ANONYMIZED = TRUE), COUNT(*)), 4),
       ROUND(DIV0(COUNT_IF(PII_DETECTED = TRUE), COUNT(*)), 4)
FROM MILLIONX.RAW_DATA.MARKET_ORDERS GROUP BY TO_DATE(INGESTED_AT);

-- Roles and grants ------------------------------------------------------------------------------------------
CREATE ROLE IF NOT EXISTS MILLIONX_LOADER
  COMMENT = 'MillionX sink: MERGE into and stream into MILLIONX.RAW_DATA tables';
CREATE ROLE IF NOT EXISTS MILLIONX_ANALYST
  COMMENT = 'Read-only access to the MILLIONX.RAW_DATA views and tables';

GRANT USAGE ON WAREHOUSE MILLIONX_WH TO ROLE MILLIONX_LOADER;
GRANT USAGE ON WAREHOUSE MILLIONX_WH TO ROLE MILLIONX_ANALYST;
GRANT USAGE ON DATABASE MILLIONX TO ROLE MILLIONX_LOADER;
GRANT USAGE ON DATABASE MILLIONX TO ROLE MILLIONX_ANALYST;
GRANT USAGE ON SCHEMA MILLIONX.RAW_DATA TO ROLE MILLIONX_LOADER;
GRANT USAGE ON SCHEMA MILLIONX.RAW_DATA TO ROLE MILLIONX_ANALYST;
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA MILLIONX.RAW_DATA TO ROLE MILLIONX_LOADER;
GRANT SELECT, INSERT, UPDATE ON FUTURE TABLES IN SCHEMA MILLIONX.RAW_DATA TO ROLE MILLIONX_LOADER;
GRANT SELECT ON ALL TABLES IN SCHEMA MILLIONX.RAW_DATA TO ROLE MILLIONX_ANALYST;
GRANT SELECT ON ALL VIEWS IN SCHEMA MILLIONX.RAW_DATA TO ROLE MILLIONX_ANALYST;
GRANT SELECT ON FUTURE VIEWS IN SCHEMA MILLIONX.RAW_DATA TO ROLE MILLIONX_ANALYST;
-- VW_WAREHOUSE_COST_TRACKING reads SNOWFLAKE.ACCOUNT_USAGE.
GRANT IMPORTED PRIVILEGES ON DATABASE SNOWFLAKE TO ROLE MILLIONX_ANALYST;
GRANT ROLE MILLIONX_LOADER TO ROLE SYSADMIN;
GRANT ROLE MILLIONX_ANALYST TO ROLE SYSADMIN;
