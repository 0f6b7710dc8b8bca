-- The candidate daily KPI mart, one frame row per (city_code, kpi_date), with the window values
-- the invariants need. Small (cities × days), so Great Expectations checks it row by row. The
-- row-level invariants (rates against counts, no negative counts) are dbt tests of kpi_daily.
SELECT k.city_code, k.kpi_date AS day, k.* EXCLUDE (city_code),
       -- wau covers D-6..D, so it is at least every dau in that range; mau_30d covers D-29..D, so
       -- it is at least every wau whose week lies inside them
       max(k.dau) OVER (PARTITION BY k.city_code ORDER BY k.kpi_date
                        RANGE BETWEEN INTERVAL 6 DAY PRECEDING AND CURRENT ROW) AS max_dau_7d,
       max(k.wau) OVER (PARTITION BY k.city_code ORDER BY k.kpi_date
                        RANGE BETWEEN INTERVAL 23 DAY PRECEDING AND CURRENT ROW) AS max_wau_in_30d,
       k.kpi_date >= CAST($window_start AS DATE) AS in_checked_window
FROM {{marts}}.kpi_daily k
ORDER BY k.city_code, k.kpi_date
