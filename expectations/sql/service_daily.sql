-- The candidate per-service mart, summarised per (city_code, kpi_date) in SQL: it has a row per
-- service and day (cities × days × up to thousands of services), too many for row-level
-- validation in pandas on every run.
WITH s AS (
    SELECT city_code, kpi_date,
           count(*) AS service_rows,
           count(*) - count(DISTINCT service_id) AS duplicate_service_rows,
           count(*) FILTER (WHERE service_id IS NULL) AS rows_without_service,
           count(*) FILTER (WHERE total_accesses < 0 OR successful_accesses < 0 OR users < 0
                                  OR successful_accesses > total_accesses OR users > total_accesses)
               AS rows_breaking_invariants,
           CAST(sum(total_accesses) AS BIGINT) AS service_total_accesses,
           CAST(sum(successful_accesses) AS BIGINT) AS service_successful_accesses
    FROM {{marts}}.service_daily GROUP BY ALL
)
SELECT s.city_code, s.kpi_date AS day, s.* EXCLUDE (city_code, kpi_date),
       k.total_accesses AS kpi_total_accesses, k.successful_accesses AS kpi_successful_accesses,
       k.kpi_date IS NOT NULL AS day_in_kpi_daily
FROM s LEFT JOIN {{marts}}.kpi_daily k ON k.city_code = s.city_code AND k.kpi_date = s.kpi_date
ORDER BY s.city_code, s.kpi_date
