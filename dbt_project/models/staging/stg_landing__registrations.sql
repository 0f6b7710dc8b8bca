{#- On Spark a table built whole from the lake (partitioned by delivery, lake.py): account
    events are few but spread over every day since a platform opened, and partitions by event
    day were thousands of tiny folders written, listed and read on every build. -#}
{{ config(materialized=incremental_unless_spark(),
          pre_hook="{{ delete_changed_events('registrations', 'event_id') }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- One row per account event: the copy from the latest delivery wins (macros/latest_copy.sql).
-- Incremental by event, as stg_landing__service_access: only the events new batches delivered
-- are ranked again.
select
    g.city_code,
    g.event_id,
    g.event_type,
    g.user_key,
    g.event_ts_utc,
    g.event_day,
    g.channel,
    g.auth_level,
    g.phone_valid,
    g.id_number_valid,
    g.district_code,
    g.dt as delivered_dt
from ({{ changed_events_of('registrations', 'event_id', 'g', 'g.*') }}) g
qualify {{ latest_copy_rank('g') }} = 1
