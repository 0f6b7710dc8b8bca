-- Content of each registrations delivery ingested in a batch > $since_batch, as one summary row
-- per delivery. Every row-level rule is evaluated here over all rows (one scan, vectorised);
-- Great Expectations then validates the counts and shares.
WITH rows AS NOT MATERIALIZED (
    SELECT * FROM raw.registrations WHERE batch_id > $since_batch
),
first_delivery AS (     -- a city's first registrations delivery is its initial load (all history)
    SELECT city_code, min(dt) AS first_dt FROM audit.deliveries WHERE source = 'registrations' GROUP BY ALL
),
summary AS (
    SELECT city_code, dt,
        count(*) AS rows,
        count(*) FILTER (WHERE event_id IS NULL OR event_type IS NULL OR user_key IS NULL
                                OR event_ts_utc IS NULL OR event_day IS NULL) AS missing_required,
        count(*) FILTER (WHERE NOT list_contains($event_types, event_type)) AS bad_event_type,
        count(*) FILTER (WHERE auth_level IS NULL OR auth_level NOT BETWEEN $auth_level_min AND $auth_level_max)
            AS bad_auth_level,
        count(*) FILTER (WHERE event_ts_utc < CAST($earliest_event_day AS TIMESTAMP) - to_hours($utc_offset_hours)
                                OR event_day > dt) AS ts_out_of_range,
        count(*) FILTER (WHERE event_day <> CAST(event_ts_utc + to_hours($utc_offset_hours) AS DATE)) AS event_day_mismatch,
        CASE WHEN regexp_full_match(city_code, '\d{6}') THEN 0 ELSE count(*) END AS bad_city_code,
        count(*) FILTER (WHERE event_day < dt - CAST($late_days AS INTEGER)) AS late_rows,
        count(*) FILTER (WHERE channel IS NOT NULL AND NOT list_contains($channels, channel)) AS unknown_channel_rows,
        count(*) FILTER (WHERE phone_valid = false OR id_number_valid = false) AS invalid_identity_rows,
        min(event_day) AS first_event_day, max(event_day) AS last_event_day
    FROM rows GROUP BY city_code, dt
),
-- uniqueness of event_id within a delivery once identical copies are dropped: first the ids that
-- occur more than once (one hash aggregate), then how many distinct versions those ids have
dup_ids AS (
    SELECT city_code, dt, event_id FROM rows GROUP BY ALL HAVING count(*) > 1
),
dups AS (
    SELECT r.city_code, r.dt, count(DISTINCT r.event_id) AS duplicated_ids,
           count(DISTINCT hash(r.event_id, r.event_type, r.user_key, r.event_ts_utc, r.channel, r.phone_hash,
                               r.id_number_hash, r.auth_level, r.district_code)) - count(DISTINCT r.event_id)
               AS conflicting_copies
    FROM rows r SEMI JOIN dup_ids d ON r.city_code = d.city_code AND r.dt = d.dt AND r.event_id = d.event_id
    GROUP BY ALL
)
SELECT s.city_code, s.dt AS day, s.* EXCLUDE (city_code, dt),
       CAST(coalesce(x.duplicated_ids, 0) AS BIGINT) AS duplicated_ids,
       CAST(coalesce(x.conflicting_copies, 0) AS BIGINT) AS conflicting_copies,
       s.dt = f.first_dt AS initial_load,
       CASE WHEN s.rows >= $min_rows_for_share AND s.dt <> f.first_dt THEN s.late_rows / s.rows END AS late_share,
       CASE WHEN s.rows >= $min_rows_for_share THEN s.unknown_channel_rows / s.rows END AS unknown_channel_share,
       CASE WHEN s.rows >= $min_rows_for_share THEN s.invalid_identity_rows / s.rows END AS invalid_identity_share
FROM summary s
LEFT JOIN dups x ON x.city_code = s.city_code AND x.dt = s.dt
LEFT JOIN first_delivery f ON f.city_code = s.city_code
ORDER BY s.city_code, s.dt
