-- Revenue and orders per hour and country: order.created events, de-duplicated by event_id.
SELECT date_trunc('hour', occurred_at) AS hour,
       country,
       currency,
       COUNT(*) AS orders,
       SUM(amount_cents) AS revenue_cents
FROM (
  SELECT DISTINCT event_id, occurred_at, country, currency, amount_cents
  FROM order_events
  WHERE event_type = 'order.created'
) o
GROUP BY date_trunc('hour', occurred_at), country, currency
ORDER BY hour, country, currency
