{{ config(materialized=incremental_unless_spark(), incremental_strategy='delete+insert', unique_key=['city_code', 'month']) }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- Monthly active users: distinct logged-in users with at least one successful access in the
-- calendar month (exact). Incremental: only the months a new batch touched are recounted.
{% if is_incremental() %}
with touched_months as (
    select distinct city_code, cast(date_trunc('month', event_day) as date) as month
    from ({{ affected_days('service_access') }})
)
{% endif %}

select
    u.city_code,
    cast(date_trunc('month', u.event_day) as date) as month,
    count(distinct u.user_key) as mau
from {{ ref('int_user_activity_aggregated_to_days') }} u
{% if is_incremental() %}
semi join touched_months t
    on t.city_code = u.city_code and t.month = cast(date_trunc('month', u.event_day) as date)
{% endif %}
group by all
