-- Content of each ratings delivery ingested in a batch > $since_batch, one summary row per delivery.
WITH rows AS NOT MATERIALIZED (
    SELECT * FROM raw.ratings WHERE batch_id > $since_batch
),
catalog AS (
    SELECT DISTINCT city_code, service_id FROM raw.service_catalog
),
summary AS (
    SELECT r.city_code, r.dt,
        count(*) AS rows,
        count(*) FILTER (WHERE r.event_id IS NULL OR r.service_id IS NULL OR r.score IS NULL
                                OR r.event_ts_utc IS NULL OR r.event_day IS NULL) AS missing_required,
        count(*) FILTER (WHERE r.score NOT BETWEEN $score_min AND $score_max) AS bad_score,
        count(*) FILTER (WHERE r.event_ts_utc < CAST($earliest_event_day AS TIMESTAMP) - to_hours($utc_offset_hours)
                                OR r.event_day > r.dt) AS ts_out_of_range,
        count(*) FILTER (WHERE r.event_day <> CAST(r.event_ts_utc + to_hours($utc_offset_hours) AS DATE)) AS event_day_mismatch,
        CASE WHEN regexp_full_match(r.city_code, '\d{6}') THEN 0 ELSE count(*) END AS bad_city_code,
        count(*) FILTER (WHERE r.event_day < r.dt - CAST($late_days AS INTEGER)) AS late_rows,
        count(*) FILTER (WHERE c.service_id IS NULL) AS orphan_service_rows,
        min(r.event_day) AS first_event_day, max(r.event_day) AS last_event_day
    FROM rows r
    LEFT JOIN catalog c ON c.city_code = r.city_code AND c.service_id = r.service_id
    GROUP BY r.city_code, r.dt
),
dup_ids AS (
    SELECT city_code, dt, event_id FROM rows GROUP BY ALL HAVING count(*) > 1
),
dups AS (
    SELECT r.city_code, r.dt, count(DISTINCT r.event_id) AS duplicated_ids,
           count(DISTINCT hash(r.event_id, r.access_event_id, r.user_key, r.service_id, r.score, r.event_ts_utc,
                               r.has_comment, r.comment_hash)) - count(DISTINCT r.event_id) AS conflicting_copies
    FROM rows r SEMI JOIN dup_ids d ON r.city_code = d.city_code AND r.dt = d.dt AND r.event_id = d.event_id
    GROUP BY ALL
)
SELECT s.city_code, s.dt AS day, s.* EXCLUDE (city_code, dt),
       CAST(coalesce(x.duplicated_ids, 0) AS BIGINT) AS duplicated_ids,
       CAST(coalesce(x.conflicting_copies, 0) AS BIGINT) AS conflicting_copies,
       CASE WHEN s.rows >= $min_rows_for_share THEN s.late_rows / s.rows END AS late_share,
       CASE WHEN s.rows >= $min_rows_for_share THEN s.orphan_service_rows / s.rows END AS orphan_service_share
FROM summary s
LEFT JOIN dups x ON x.city_code = s.city_code AND x.dt = s.dt
ORDER BY s.city_code, s.dt
