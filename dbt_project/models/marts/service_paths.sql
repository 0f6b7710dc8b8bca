{{ config(materialized=incremental_unless_spark(), pre_hook="{{ delete_months_from_rebuild() }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}
-- depends_on: {{ ref('stg_audit__deliveries') }}

-- What users do next (user_ops.md): each user-day's successful accesses in time order (ties:
-- smaller event_id first), consecutive repeats of one service collapsed, as steps between
-- services, the day's first from '(start)' and its last to '(end)'; counted per city and
-- covered month. Incremental: the months from the first one a new batch can change
-- (user_ops_rebuild_from) are dropped (pre_hook) and counted again from their own days.
with accesses as (
    select a.city_code, a.user_key, a.event_day, a.event_ts_utc, a.event_id, a.service_id
    from {{ ref('stg_landing__service_access') }} a
    semi join {{ ref('int_city_days_enumerated') }} d on d.city_code = a.city_code and d.kpi_date = a.event_day
    {% if is_incremental() %}
    semi join ({{ user_ops_rebuild_from() }}) r on r.city_code = a.city_code and a.event_day >= r.first_month
    {% endif %}
    where a.outcome = 'success' and a.user_key is not null
),

-- a repeat of the service just before (same user-day) adds no step
collapsed as (
    select *
    from accesses
    qualify lag(service_id) over (partition by city_code, user_key, event_day order by event_ts_utc, event_id)
            is distinct from service_id
         or row_number() over (partition by city_code, user_key, event_day order by event_ts_utc, event_id) = 1
),

steps as (
    select city_code, user_key, event_day,
           case when row_number() over day_order = 1 then '(start)' else lag(service_id) over day_order end
               as from_service_id,
           service_id as to_service_id
    from collapsed
    window day_order as (partition by city_code, user_key, event_day order by event_ts_utc, event_id)
    union all
    select city_code, user_key, event_day, service_id, '(end)'
    from collapsed
    qualify row_number() over (partition by city_code, user_key, event_day
                               order by event_ts_utc desc, event_id desc) = 1
)

select
    s.city_code,
    cast(date_trunc('month', s.event_day) as date) as month,
    s.from_service_id,
    s.to_service_id,
    count(*) as steps,
    count(distinct s.user_key) as users
from steps s
semi join {{ ref('int_city_periods_covered') }} c
    on c.city_code = s.city_code and c.grain = 'month' and c.period_start = cast(date_trunc('month', s.event_day) as date)
group by all
