-- Top 20 SKUs by units ordered (line items de-duplicated by event and line).
SELECT sku, SUM(quantity) AS units, SUM(quantity * unit_price_cents) AS revenue_cents
FROM (
  SELECT DISTINCT event_id, line_number, sku, quantity, unit_price_cents
  FROM order_items
) i
GROUP BY sku
ORDER BY units DESC, sku
LIMIT 20
