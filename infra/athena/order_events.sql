-- order_events: One row per order event; fields the event type lacks are null.
-- Replace s3://LAKE_BUCKET/LAKE_PREFIX/ with the lake root (LAKE_URI of the event-processor).
-- Partition projection: new dt/hour partitions are queryable at once, with no crawler
-- and no MSCK REPAIR TABLE.
CREATE EXTERNAL TABLE IF NOT EXISTS events.order_events (
  event_id        string    COMMENT 'UUID; de-duplicate on it (retries can repeat a row)',
  event_type      string,
  schema_version  int,
  occurred_at     timestamp COMMENT 'event time, UTC, millisecond precision',
  source          string    COMMENT 'producing function',
  correlation_id  string,
  shard_id        string,
  sequence_number string    COMMENT '56-digit Kinesis sequence number (too long for an integer)',
  arrived_at      timestamp COMMENT 'approximate arrival in Kinesis, UTC',
  order_id       string,
  user_id        string,
  country        string,
  currency       string,
  amount_cents   bigint COMMENT 'total_cents of order.created, amount_cents of payment events',
  item_count     int    COMMENT 'line items of order.created',
  payment_id     string,
  payment_method string,
  failure_reason string,
  warehouse      string,
  carrier        string,
  shipped_items  int,
  cancel_reason  string
)
COMMENT 'One row per order event; fields the event type lacks are null.'
PARTITIONED BY (dt string, hour string)
STORED AS PARQUET
LOCATION 's3://LAKE_BUCKET/LAKE_PREFIX/order_events/'
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
  'storage.location.template'         = 's3://LAKE_BUCKET/LAKE_PREFIX/order_events/dt=${dt}/hour=${hour}/'
);
