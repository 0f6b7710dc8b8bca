{{ config(materialized='incremental', partition_by=day_partitions(), pre_hook="{{ delete_affected_days('service_access') }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- Accesses per city, event day and access channel (empty or null: 'unknown'); active_users =
-- distinct logged-in users with a successful access through that channel that day.
select
    a.city_code,
    a.event_day,
    {{ channel_or_unknown('a.channel') }} as channel,
    count(*) as total_accesses,
    count(*) filter (where a.outcome = 'success') as successful_accesses,
    count(distinct a.user_key) filter (where a.outcome = 'success') as active_users
from {{ ref('stg_landing__service_access') }} a
{{ only_affected_days('service_access', 'a') }}
group by all
