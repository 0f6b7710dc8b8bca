-- The candidate daily KPI mart, one frame row per (city_code, kpi_date), with the window values
-- the invariants need. Small (cities × days), so Great Expectations checks it row by row.
SELECT k.city_code, k.kpi_date AS day, k.* EXCLUDE (city_code),
       CAST(date_diff('day', lag(k.kpi_date) OVER w, k.kpi_date) AS BIGINT) AS days_since_previous_row,
       -- wau covers D-6..D, so it is at least every dau in that range; mau_30d covers D-29..D, so
       -- it is at least every dau of the 30 days and every wau whose week lies inside them
       max(k.dau) OVER (PARTITION BY k.city_code ORDER BY k.kpi_date
                        RANGE BETWEEN INTERVAL 6 DAY PRECEDING AND CURRENT ROW) AS max_dau_7d,
       max(k.dau) OVER (PARTITION BY k.city_code ORDER BY k.kpi_date
                        RANGE BETWEEN INTERVAL 29 DAY PRECEDING AND CURRENT ROW) AS max_dau_30d,
       max(k.wau) OVER (PARTITION BY k.city_code ORDER BY k.kpi_date
                        RANGE BETWEEN INTERVAL 23 DAY PRECEDING AND CURRENT ROW) AS max_wau_in_30d,
       -- 1 when a rate disagrees with its counts (null exactly when the denominator is 0)
       CASE WHEN k.total_accesses IS NULL THEN NULL
            WHEN k.total_accesses = 0 THEN CAST(k.success_rate IS NOT NULL AS INTEGER)
            WHEN k.success_rate IS NULL THEN 1
            ELSE CAST(abs(k.success_rate - k.successful_accesses / k.total_accesses) > 1e-9 AS INTEGER)
       END AS success_rate_mismatch,
       CASE WHEN k.ratings IS NULL THEN NULL
            WHEN k.ratings = 0 THEN CAST(k.satisfaction_rate IS NOT NULL AS INTEGER)
            ELSE CAST(k.satisfaction_rate IS NULL AS INTEGER)
       END AS satisfaction_rate_mismatch,
       CAST(len(list_filter([k.connected_services, k.active_services, k.registered_users, k.new_registrations,
                             k.cancellations, k.verified_users, k.dau, k.wau, k.mau_30d, k.total_accesses,
                             k.successful_accesses, k.ratings], lambda x: x < 0)) AS BIGINT) AS negative_counts,
       k.kpi_date >= CAST($window_start AS DATE) AS in_checked_window
FROM {{marts}}.kpi_daily k
WINDOW w AS (PARTITION BY k.city_code ORDER BY k.kpi_date)
ORDER BY k.city_code, k.kpi_date
