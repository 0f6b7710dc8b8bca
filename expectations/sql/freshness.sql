-- Delivery freshness: one row per city and daily source, the city's latest complete delivery
-- against the newest any city delivered for that source. Whole history (not only new batches):
-- a city that stopped delivering sends no new batch to look at.
WITH latest AS (
    SELECT city_code, source, max(dt) AS last_dt, count(*) AS deliveries
    FROM audit.deliveries
    WHERE list_contains($sources, source)
    GROUP BY ALL
),
newest AS (
    SELECT source, max(last_dt) AS newest_dt, count(*) AS cities FROM latest GROUP BY ALL
)
SELECT l.city_code, l.last_dt AS day, l.source, l.deliveries, n.newest_dt, n.cities,
       CAST(date_diff('day', l.last_dt, n.newest_dt) AS BIGINT) AS lag_days
FROM latest l JOIN newest n USING (source)
ORDER BY l.city_code, l.source
