-- order_items: One row per line item of order.created.
-- Replace s3://LAKE_BUCKET/LAKE_PREFIX/ with the lake root (LAKE_URI of the event-processor).
-- Partition projection: new dt/hour partitions are queryable at once, with no crawler
-- and no MSCK REPAIR TABLE.
CREATE EXTERNAL TABLE IF NOT EXISTS events.order_items (
  event_id        string    COMMENT 'UUID; de-duplicate on it (retries can repeat a row)',
  event_type      string,
  schema_version  int,
  occurred_at     timestamp COMMENT 'event time, UTC, millisecond precision',
  source          string    COMMENT 'producing function',
  correlation_id  string,
  shard_id        string,
  sequence_number string    COMMENT '56-digit Kinesis sequence number (too long for an integer)',
  arrived_at      timestamp COMMENT 'approximate arrival in Kinesis, UTC',
  order_id         string,
  user_id          string,
  line_number      int,
  sku              string,
  quantity         int,
  unit_price_cents bigint,
  currency         string,
  country          string
)
COMMENT 'One row per line item of order.created.'
PARTITIONED BY (dt string, hour string)
STORED AS PARQUET
LOCATION 's3://LAKE_BUCKET/LAKE_PREFIX/order_items/'
TBLPROPERTIES (
  'parquet.compression'               = 'ZSTD',
  'projection.enabled'                = 'true',
  'projection.dt.type'                = 'date',
  'projection.dt.format'              = 'yyyy-MM-dd',
  'projection.dt.range'               = '2024-01-01,NOW',
  'projection.dt.interval'            = '1',
  'projection.dt.interval.unit'       = 'DAYS',
  'projection.hour.type'              = 'integer',
  'projection.hour.range'             = '0,23',
  'projection.hour.digits'            = '2',
  'storage.location.template'         = 's3://LAKE_BUCKET/LAKE_PREFIX/order_items/dt=${dt}/hour=${hour}/'
);
