{#- Content of each ratings delivery (the shared block: _raw_delivery.sql). -#}
{% extends "_raw_delivery.sql" %}
{% block source %}ratings{% endblock %}
{% block ctes %}
catalog AS (            -- every service a city's catalog ever listed (any snapshot)
    SELECT DISTINCT city_code, service_id FROM raw.service_catalog
),
{%- endblock %}
{% block missing_required %}r.event_id IS NULL OR r.service_id IS NULL OR r.score IS NULL
                                OR r.event_ts_utc IS NULL OR r.event_day IS NULL{% endblock %}
{% block value_counts %}
        count(*) FILTER (WHERE r.score NOT BETWEEN $score_min AND $score_max) AS bad_score,
{%- endblock %}
{% block share_counts %}
        count(*) FILTER (WHERE c.service_id IS NULL) AS orphan_service_rows,
{%- endblock %}
{% block joins %}LEFT JOIN catalog c ON c.city_code = r.city_code AND c.service_id = r.service_id{% endblock %}
{% block copy_columns %}r.event_id, r.access_event_id, r.user_key, r.service_id, r.score, r.event_ts_utc,
                               r.has_comment, r.comment_hash{% endblock %}
{% block shares %},
       CASE WHEN s.rows >= $min_rows_for_share THEN s.orphan_service_rows / s.rows END AS orphan_service_share
{%- endblock %}
