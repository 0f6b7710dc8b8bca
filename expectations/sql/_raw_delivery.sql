{#- One summary row per delivery of a raw event source, for the batches after $since_batch: the
    block every raw source's check repeats (required fields, time range, the business day,
    city code, late rows, duplicate ids, shares), with the source's own rules filled into the
    blocks by raw_<source>.sql ({% extends %}). Every row-level rule is evaluated here over all
    rows (one scan plus one hash aggregate for duplicate ids, vectorised); Great Expectations then
    validates the counts and shares. -#}
WITH rows AS NOT MATERIALIZED (
    SELECT * FROM raw.{% block source %}{% endblock %} WHERE batch_id > $since_batch
),
{% block ctes %}{% endblock %}
summary AS (
    SELECT r.city_code, r.dt,
        count(*) AS rows,
        count(*) FILTER (WHERE {% block missing_required %}{% endblock %}) AS missing_required,
        {%- block value_counts %}{% endblock %}
        count(*) FILTER (WHERE r.event_ts_utc < CAST($earliest_event_day AS TIMESTAMP) - to_hours($utc_offset_hours)
                                OR r.event_day > r.dt) AS ts_out_of_range,
        count(*) FILTER (WHERE r.event_day <> CAST(r.event_ts_utc + to_hours($utc_offset_hours) AS DATE)) AS event_day_mismatch,
        CASE WHEN regexp_full_match(r.city_code, '\d{6}') THEN 0 ELSE count(*) END AS bad_city_code,
        count(*) FILTER (WHERE r.event_day < r.dt - CAST($late_days AS INTEGER)) AS late_rows,
        {%- block share_counts %}{% endblock %}
        min(r.event_day) AS first_event_day, max(r.event_day) AS last_event_day
    FROM rows r
    {% block joins %}{% endblock %}
    GROUP BY r.city_code, r.dt
),
-- uniqueness of event_id within a delivery once identical copies are dropped: first the ids that
-- occur more than once (one hash aggregate), then how many distinct versions those ids have
dup_ids AS (
    SELECT city_code, dt, event_id FROM rows GROUP BY ALL HAVING count(*) > 1
),
dups AS (
    SELECT r.city_code, r.dt, count(DISTINCT r.event_id) AS duplicated_ids,
           count(DISTINCT hash({% block copy_columns %}{% endblock %})) - count(DISTINCT r.event_id)
               AS conflicting_copies
    FROM rows r SEMI JOIN dup_ids d ON r.city_code = d.city_code AND r.dt = d.dt AND r.event_id = d.event_id
    GROUP BY ALL
)
SELECT s.city_code, s.dt AS day, s.* EXCLUDE (city_code, dt),
       CAST(coalesce(x.duplicated_ids, 0) AS BIGINT) AS duplicated_ids,
       CAST(coalesce(x.conflicting_copies, 0) AS BIGINT) AS conflicting_copies,
       {%- block columns %}{% endblock %}
       CASE WHEN s.rows >= $min_rows_for_share{% block lateness_judged_also %}{% endblock %} THEN s.late_rows / s.rows END AS late_share
       {%- block shares %}{% endblock %}
FROM summary s
LEFT JOIN dups x ON x.city_code = s.city_code AND x.dt = s.dt
{% block final_joins %}{% endblock %}
ORDER BY s.city_code, s.dt
