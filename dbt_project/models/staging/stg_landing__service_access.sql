{{ config(partition_by=day_partitions(), pre_hook="{{ delete_affected_days('service_access') }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- One row per access event: the copy from the latest delivery wins. A redelivered event
-- keeps its id and event time, so its copies share an event day and the dedup can run
-- day by day over the days the new batches touched.
select
    a.city_code,
    a.event_id,
    a.user_key,
    a.service_id,
    a.event_ts_utc,
    a.event_day,
    a.channel,
    a.outcome,
    a.duration_ms,
    a.dt as delivered_dt
from {{ source('landing', 'service_access') }} a
{{ only_affected_days('service_access', 'a') }}
qualify row_number() over (partition by a.city_code, a.event_id order by a.dt desc, a.file, a.line) = 1
