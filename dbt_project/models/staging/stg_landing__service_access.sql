{{ config(partition_by=day_partitions(), pre_hook="{{ delete_changed_events('service_access', 'event_id') }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- One row per access event: the copy from the latest delivery wins (macros/latest_copy.sql).
-- A redelivered event keeps its id and event time, so its copies share an event day. An
-- incremental build ranks again only the events the new batches delivered, and every event of
-- a day a re-export or withdrawal removed rows from (macros/affected_days.sql,
-- changed_events_of). Only the ids delivered more than once are ranked (a window over every
-- row cost ~15 % more CPU at 10M rows); the rest pass as is.
with delivered as (
    {{ changed_events_of('service_access', 'event_id', 'a',
        'a.city_code, a.event_id, a.user_key, a.service_id, a.event_ts_utc, a.event_day, a.channel,
         a.outcome, a.duration_ms, a.dt as delivered_dt, a.file, a.line') }}
),

repeated as (
    select city_code, event_id
    from delivered
    group by city_code, event_id
    having count(*) > 1
),

latest_copies as (
    select d.*,
           {{ latest_copy_rank('d', delivered='delivered_dt') }} as copy_rank
    from delivered d
    where exists (select 1 from repeated r where r.city_code = d.city_code and r.event_id = d.event_id)
)

select city_code, event_id, user_key, service_id, event_ts_utc, event_day, channel, outcome, duration_ms,
       delivered_dt
from delivered d
where not exists (select 1 from repeated r where r.city_code = d.city_code and r.event_id = d.event_id)
union all
select city_code, event_id, user_key, service_id, event_ts_utc, event_day, channel, outcome, duration_ms,
       delivered_dt
from latest_copies
where copy_rank = 1
