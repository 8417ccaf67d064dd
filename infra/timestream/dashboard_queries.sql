-- Dashboard queries in Timestream SQL over the metrics-aggregator's table.
-- Each record is one shard's contribution in one tumbling window to one minute: always SUM
-- over shard_id and window (never read a single record as the total).
-- Grafana: replace ago(3h) with $__timeFilter and 1m with $__interval.

-- Orders and gross revenue per minute and country.
SELECT bin(time, 1m) AS minute, country, currency,
       SUM(orders_created) AS orders,
       SUM(gross_revenue_cents) / 100.0 AS gross_revenue
FROM "events"."business_metrics"
WHERE measure_name = 'business_metrics' AND time > ago(3h)
GROUP BY 1, 2, 3
ORDER BY 1;

-- Payment success rate per payment method.
SELECT bin(time, 5m) AS bucket, payment_method,
       SUM(payments_succeeded) AS succeeded,
       SUM(payments_failed) AS failed,
       SUM(payments_succeeded) * 1.0 / NULLIF(SUM(payments_succeeded) + SUM(payments_failed), 0) AS success_rate
FROM "events"."business_metrics"
WHERE measure_name = 'business_metrics' AND time > ago(3h) AND payment_method <> 'none'
GROUP BY 1, 2
ORDER BY 1;

-- Funnel per hour: sign-ups, orders, payments, fulfilments, cancellations.
SELECT bin(time, 1h) AS hour,
       SUM(signups) AS signups, SUM(logins) AS logins,
       SUM(orders_created) AS orders, SUM(payments_succeeded) AS paid,
       SUM(orders_fulfilled) AS fulfilled, SUM(orders_cancelled) AS cancelled
FROM "events"."business_metrics"
WHERE measure_name = 'business_metrics' AND time > ago(24h)
GROUP BY 1
ORDER BY 1;

-- Items sold and paid revenue per currency, last hour.
SELECT currency, SUM(items_sold) AS items, SUM(payment_revenue_cents) / 100.0 AS paid_revenue
FROM "events"."business_metrics"
WHERE measure_name = 'business_metrics' AND time > ago(1h) AND currency <> 'none'
GROUP BY 1
ORDER BY paid_revenue DESC;
