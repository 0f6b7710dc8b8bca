-- The day series each city must have: a kpi_daily row for every day from its earliest complete
-- delivery (any source) to its latest (kpis.md). One frame row per city seen on either side.
WITH deliveries AS (
    SELECT city_code, min(dt) AS first_delivery_dt, max(dt) AS last_delivery_dt
    FROM audit.deliveries GROUP BY ALL
),
series AS (
    SELECT city_code, min(kpi_date) AS first_kpi_date, max(kpi_date) AS last_kpi_date,
           count(*) AS kpi_rows, count(DISTINCT kpi_date) AS kpi_days
    FROM {{marts}}.kpi_daily GROUP BY ALL
)
SELECT city_code, coalesce(s.last_kpi_date, d.last_delivery_dt) AS day,
       d.first_delivery_dt, d.last_delivery_dt, s.first_kpi_date, s.last_kpi_date,
       CAST(s.kpi_rows AS BIGINT) AS kpi_rows,
       CAST(date_diff('day', d.first_delivery_dt, d.last_delivery_dt) + 1 AS BIGINT) AS expected_days,
       CAST(s.kpi_days AS BIGINT) AS kpi_days,
       s.city_code IS NOT NULL AS in_marts, d.city_code IS NOT NULL AS in_deliveries
FROM deliveries d FULL OUTER JOIN series s USING (city_code)
ORDER BY city_code
