-- Sample queries. Retries can write an event twice (the archiver reports the first record it
-- could not store and Lambda re-sends everything after it), so count DISTINCT event_id, or
-- de-duplicate first as below. Compaction removes the duplicates from the files.
-- Always filter on dt (and hour): partition projection then reads only those folders.

-- Revenue and orders per hour and country, one day.
SELECT dt, hour, country, currency,
       count(DISTINCT event_id) AS orders,
       sum(amount_cents) / 100.0 AS revenue
FROM (
  SELECT DISTINCT event_id, dt, hour, country, currency, amount_cents
  FROM events.order_events
  WHERE dt = '2026-11-25' AND event_type = 'order.created'
)
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3;

-- Payment failure rate by method and reason.
SELECT payment_method,
       count(DISTINCT event_id) FILTER (WHERE event_type = 'order.payment_failed') AS failed,
       count(DISTINCT event_id) AS attempts,
       round(1.0 * count(DISTINCT event_id) FILTER (WHERE event_type = 'order.payment_failed')
             / count(DISTINCT event_id), 4) AS failure_rate
FROM events.order_events
WHERE dt = '2026-11-25' AND event_type IN ('order.payment_succeeded', 'order.payment_failed')
GROUP BY 1
ORDER BY failure_rate DESC;

-- Top SKUs by units sold (line items de-duplicated by event and line).
SELECT sku, sum(quantity) AS units, sum(quantity * unit_price_cents) / 100.0 AS revenue
FROM (
  SELECT DISTINCT event_id, line_number, sku, quantity, unit_price_cents
  FROM events.order_items
  WHERE dt = '2026-11-25'
)
GROUP BY 1
ORDER BY units DESC
LIMIT 20;

-- Sign-ups by channel and e-mail domain (no raw addresses in the lake).
SELECT channel, email_domain, count(DISTINCT event_id) AS signups
FROM events.user_events
WHERE dt = '2026-11-25' AND event_type = 'user.signed_up'
GROUP BY 1, 2
ORDER BY signups DESC;

-- Ingest lag: arrival in Kinesis minus event time, p50/p99 per hour.
SELECT hour,
       approx_percentile(date_diff('millisecond', occurred_at, arrived_at), 0.5) AS p50_ms,
       approx_percentile(date_diff('millisecond', occurred_at, arrived_at), 0.99) AS p99_ms
FROM events.order_events
WHERE dt = '2026-11-25'
GROUP BY 1
ORDER BY 1;
