{{ config(partition_by=day_partitions(), pre_hook="{{ delete_changed_events('ratings', 'event_id') }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- One row per rating: the copy from the latest delivery wins (macros/latest_copy.sql; see
-- stg_landing__service_access).
select
    r.city_code,
    r.event_id,
    r.access_event_id,
    r.user_key,
    r.service_id,
    r.score,
    r.event_ts_utc,
    r.event_day,
    r.has_comment,
    r.dt as delivered_dt
from ({{ changed_events_of('ratings', 'event_id', 'r', 'r.*') }}) r
qualify {{ latest_copy_rank('r') }} = 1
