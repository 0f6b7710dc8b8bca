-- Each service_catalog snapshot ingested in a batch > $since_batch, one summary row per snapshot,
-- compared with the city's previous snapshot (any batch).
WITH rows AS NOT MATERIALIZED (
    SELECT * FROM raw.service_catalog WHERE batch_id > $since_batch
),
sizes AS (              -- services per snapshot, all snapshots of the cities concerned
    SELECT city_code, dt, count(DISTINCT service_id) AS services
    FROM raw.service_catalog
    WHERE city_code IN (SELECT city_code FROM rows)
    GROUP BY ALL
),
previous AS (
    SELECT city_code, dt, lag(services) OVER (PARTITION BY city_code ORDER BY dt) AS previous_services,
           lag(dt) OVER (PARTITION BY city_code ORDER BY dt) AS previous_dt
    FROM sizes
),
summary AS (
    SELECT city_code, dt,
        count(*) AS rows,
        count(DISTINCT service_id) AS services,
        count(*) FILTER (WHERE service_id IS NULL OR online_date IS NULL) AS missing_required,
        count(*) FILTER (WHERE offline_date <= online_date) AS offline_not_after_online,
        CASE WHEN regexp_full_match(city_code, '\d{6}') THEN 0 ELSE count(*) END AS bad_city_code,
        count(*) FILTER (WHERE online_date <= dt AND (offline_date IS NULL OR offline_date > dt)) AS connected_on_dt
    FROM rows GROUP BY city_code, dt
),
conflicts AS (          -- a service listed twice in one snapshot with different attributes
    SELECT city_code, dt, count(*) AS conflicting_services
    FROM (SELECT city_code, dt, service_id
          FROM rows GROUP BY ALL
          HAVING count(DISTINCT hash(service_name, department, category, online_date, offline_date)) > 1)
    GROUP BY ALL
)
SELECT s.city_code, s.dt AS day, s.* EXCLUDE (city_code, dt),
       CAST(coalesce(c.conflicting_services, 0) AS BIGINT) AS conflicting_services,
       p.previous_dt, p.previous_services,
       CASE WHEN p.previous_services >= $min_services_for_ratio THEN s.services / p.previous_services END
           AS services_vs_previous
FROM summary s
LEFT JOIN conflicts c ON c.city_code = s.city_code AND c.dt = s.dt
LEFT JOIN previous p ON p.city_code = s.city_code AND p.dt = s.dt
ORDER BY s.city_code, s.dt
