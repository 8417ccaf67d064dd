-- Payment failures by method and reason.
SELECT payment_method, failure_reason, COUNT(*) AS failures
FROM (
  SELECT DISTINCT event_id, payment_method, failure_reason
  FROM order_events
  WHERE event_type = 'order.payment_failed'
) f
GROUP BY payment_method, failure_reason
ORDER BY failures DESC, payment_method, failure_reason
