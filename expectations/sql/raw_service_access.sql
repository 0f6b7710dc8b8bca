{#- Content of each service_access delivery (the shared block: _raw_delivery.sql). -#}
{% extends "_raw_delivery.sql" %}
{% block source %}service_access{% endblock %}
{% block ctes %}
catalog AS (            -- every service a city's catalog ever listed (any snapshot)
    SELECT DISTINCT city_code, service_id FROM raw.service_catalog
),
{%- endblock %}
{% block missing_required %}r.event_id IS NULL OR r.service_id IS NULL OR r.event_ts_utc IS NULL
                                OR r.event_day IS NULL OR r.outcome IS NULL{% endblock %}
{% block value_counts %}
        count(*) FILTER (WHERE NOT list_contains($outcomes, r.outcome)) AS bad_outcome,
        count(*) FILTER (WHERE r.duration_ms < 0) AS negative_duration,
{%- endblock %}
{% block share_counts %}
        count(*) FILTER (WHERE r.channel IS NOT NULL AND NOT list_contains($channels, r.channel))
            AS unknown_channel_rows,
        count(*) FILTER (WHERE c.service_id IS NULL) AS orphan_service_rows,
        count(*) FILTER (WHERE r.user_key IS NULL) AS anonymous_rows,
        count(*) FILTER (WHERE r.outcome = 'success') AS success_rows,
{%- endblock %}
{% block joins %}LEFT JOIN catalog c ON c.city_code = r.city_code AND c.service_id = r.service_id{% endblock %}
{% block copy_columns %}r.event_id, r.user_key, r.service_id, r.event_ts_utc, r.channel, r.outcome,
                               r.duration_ms{% endblock %}
{% block shares %},
       CASE WHEN s.rows >= $min_rows_for_share THEN s.unknown_channel_rows / s.rows END AS unknown_channel_share,
       CASE WHEN s.rows >= $min_rows_for_share THEN s.orphan_service_rows / s.rows END AS orphan_service_share
{%- endblock %}
