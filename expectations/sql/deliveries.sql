-- Delivery ledger: one row per delivery folder (city_code, source, dt) whose latest copy was
-- ingested in a batch > $since_batch, reconciled against what actually landed in raw.* and
-- audit.rejected_rows. Counting only: cheap at any size (zone maps skip older batches).
WITH d AS (
    SELECT city_code, source, dt, batch_id, files, files_rejected, rows_read, rows_loaded, rows_rejected,
           duplicates_in_delivery
    FROM audit.deliveries
    WHERE batch_id > $since_batch
),
raw_rows AS (
    SELECT 'registrations' AS source, city_code, dt, count(*) AS n
    FROM raw.registrations WHERE batch_id > $since_batch GROUP BY ALL
    UNION ALL
    SELECT 'service_access', city_code, dt, count(*) FROM raw.service_access WHERE batch_id > $since_batch GROUP BY ALL
    UNION ALL
    SELECT 'service_catalog', city_code, dt, count(*) FROM raw.service_catalog WHERE batch_id > $since_batch GROUP BY ALL
    UNION ALL
    SELECT 'ratings', city_code, dt, count(*) FROM raw.ratings WHERE batch_id > $since_batch GROUP BY ALL
    UNION ALL
    SELECT 'review_tickets', city_code, dt, count(*) FROM raw.review_tickets WHERE batch_id > $since_batch GROUP BY ALL
),
rejects AS (
    SELECT source, city_code, dt, count(*) AS n
    FROM audit.rejected_rows WHERE batch_id > $since_batch GROUP BY ALL
)
SELECT d.city_code, d.dt AS day, d.source, d.batch_id,
       d.files, d.files_rejected, d.rows_read, d.rows_loaded, d.rows_rejected,
       CAST(coalesce(r.n, 0) AS BIGINT) AS raw_rows,
       CAST(coalesce(j.n, 0) AS BIGINT) AS rejected_rows_listed,
       CAST(d.rows_loaded + d.rows_rejected AS BIGINT) AS rows_accounted,
       -- share of the delivery's rows set aside; NULL (not judged) for small deliveries, where a
       -- couple of bad rows make a big share without saying anything about the export
       CASE WHEN d.rows_read >= $min_rows_for_share THEN d.rows_rejected / d.rows_read END AS rejected_share,
       CASE WHEN d.files > 0 THEN d.files_rejected / d.files END AS files_rejected_share
FROM d
LEFT JOIN raw_rows r ON r.source = d.source AND r.city_code = d.city_code AND r.dt = d.dt
LEFT JOIN rejects j ON j.source = d.source AND j.city_code = d.city_code AND j.dt = d.dt
ORDER BY d.city_code, d.source, d.dt
