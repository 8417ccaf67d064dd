-- The Glue database of the lake tables.
CREATE DATABASE IF NOT EXISTS events
COMMENT 'Event lake written by the event-processor Lambda (Parquet, Hive partitions dt/hour, UTC)';
