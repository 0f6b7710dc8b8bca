{#- Content of each registrations delivery (the shared block: _raw_delivery.sql). -#}
{% extends "_raw_delivery.sql" %}
{% block source %}registrations{% endblock %}
{% block ctes %}
first_delivery AS (     -- a city's first registrations delivery is its initial load (all history)
    SELECT city_code, min(dt) AS first_dt FROM audit.deliveries WHERE source = 'registrations' GROUP BY ALL
),
{%- endblock %}
{% block missing_required %}r.event_id IS NULL OR r.event_type IS NULL OR r.user_key IS NULL
                                OR r.event_ts_utc IS NULL OR r.event_day IS NULL{% endblock %}
{% block value_counts %}
        count(*) FILTER (WHERE NOT list_contains($event_types, r.event_type)) AS bad_event_type,
        count(*) FILTER (WHERE r.auth_level IS NULL OR r.auth_level NOT BETWEEN $auth_level_min AND $auth_level_max)
            AS bad_auth_level,
{%- endblock %}
{% block share_counts %}
        count(*) FILTER (WHERE r.channel IS NOT NULL AND NOT list_contains($channels, r.channel)) AS unknown_channel_rows,
        count(*) FILTER (WHERE r.phone_valid = false OR r.id_number_valid = false) AS invalid_identity_rows,
{%- endblock %}
{% block copy_columns %}r.event_id, r.event_type, r.user_key, r.event_ts_utc, r.channel, r.phone_hash,
                               r.id_number_hash, r.auth_level, r.district_code{% endblock %}
{% block columns %}
       s.dt = f.first_dt AS initial_load,
{%- endblock %}
{#- the initial load brings all history at once: its old rows are not late -#}
{% block lateness_judged_also %} AND s.dt <> f.first_dt{% endblock %}
{% block shares %},
       CASE WHEN s.rows >= $min_rows_for_share THEN s.unknown_channel_rows / s.rows END AS unknown_channel_share,
       CASE WHEN s.rows >= $min_rows_for_share THEN s.invalid_identity_rows / s.rows END AS invalid_identity_share
{%- endblock %}
{% block final_joins %}LEFT JOIN first_delivery f ON f.city_code = s.city_code{% endblock %}
