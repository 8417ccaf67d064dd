-- Payment failure rate by method: failed attempts over all attempts.
SELECT payment_method,
       SUM(CASE WHEN event_type = 'order.payment_failed' THEN 1 ELSE 0 END) AS failed,
       COUNT(*) AS attempts,
       CAST(SUM(CASE WHEN event_type = 'order.payment_failed' THEN 1 ELSE 0 END) AS DOUBLE)
         / CAST(COUNT(*) AS DOUBLE) AS failure_rate
FROM (
  SELECT DISTINCT event_id, event_type, payment_method
  FROM order_events
  WHERE event_type IN ('order.payment_succeeded', 'order.payment_failed')
) p
GROUP BY payment_method
ORDER BY failure_rate DESC, payment_method
