-- The candidate monthly KPI mart, one frame row per (city_code, month), beside what the daily
-- mart says about the same month. Sums and month-end values are compared only for months the
-- daily series covers completely (every day has a row). The row-level invariants (month is a
-- first day, activity_rate against its counts) are dbt tests of kpi_monthly.
WITH daily AS (
    SELECT city_code, CAST(date_trunc('month', kpi_date) AS DATE) AS month,
           count(*) AS days_with_rows,
           max(dau) AS max_dau,
           CAST(sum(new_registrations) AS BIGINT) AS sum_new_registrations,
           CAST(sum(total_accesses) AS BIGINT) AS sum_total_accesses,
           arg_max(registered_users, kpi_date) AS last_day_registered_users,
           arg_max(connected_services, kpi_date) AS last_day_connected_services
    FROM {{marts}}.kpi_daily GROUP BY ALL
)
SELECT m.city_code, m.month AS day, m.*  EXCLUDE (city_code),
       d.max_dau,
       CASE WHEN d.days_with_rows = extract('day' FROM last_day(m.month)) THEN d.sum_new_registrations END
           AS daily_new_registrations,
       CASE WHEN d.days_with_rows = extract('day' FROM last_day(m.month)) THEN d.sum_total_accesses END
           AS daily_total_accesses,
       CASE WHEN d.days_with_rows = extract('day' FROM last_day(m.month)) THEN d.last_day_registered_users END
           AS daily_registered_users,
       CASE WHEN d.days_with_rows = extract('day' FROM last_day(m.month)) THEN d.last_day_connected_services END
           AS daily_connected_services
FROM {{marts}}.kpi_monthly m
LEFT JOIN daily d ON d.city_code = m.city_code AND d.month = m.month
ORDER BY m.city_code, m.month
