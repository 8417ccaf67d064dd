-- The funnel in users: signed up -> ordered -> paid -> fulfilled.
SELECT 'signed_up' AS step, 1 AS position, COUNT(DISTINCT user_id) AS users
FROM user_events WHERE event_type = 'user.signed_up'
UNION ALL
SELECT 'ordered' AS step, 2 AS position, COUNT(DISTINCT user_id) AS users
FROM order_events WHERE event_type = 'order.created'
UNION ALL
SELECT 'paid' AS step, 3 AS position, COUNT(DISTINCT user_id) AS users
FROM order_events WHERE event_type = 'order.payment_succeeded'
UNION ALL
SELECT 'fulfilled' AS step, 4 AS position, COUNT(DISTINCT user_id) AS users
FROM order_events WHERE event_type = 'order.fulfilled'
ORDER BY position
