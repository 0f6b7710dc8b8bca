-- The scorecard's measured indicators per city and month (scorecard.md), for every month the
-- city's day series reaches; only months with days_covered = days_in_month can be scored.
-- Nothing here depends on an evaluation scheme: reliability, which needs the scheme's
-- day_threshold, is counted from kpi_daily at scoring time (citycloud/scorecard).
with days as (
    select *, cast(date_trunc('month', kpi_date) as date) as month
    from {{ ref('kpi_daily') }}
),

-- Days on which every source the KPIs rest on was delivered on time (dt = that day).
fully_delivered_days as (
    select city_code, dt
    from {{ ref('stg_audit__deliveries') }}
    where source in ('registrations', 'service_access', 'ratings')
    group by all
    having count(distinct source) = 3
),

timeliness as (
    select city_code, cast(date_trunc('month', event_day) as date) as month,
           sum(counted_events) as counted_events, sum(timely_events) as timely_events
    from {{ ref('int_events_timeliness_aggregated_to_days') }}
    group by all
),

months as (
    select
        d.city_code,
        d.month,
        count(*) as days_covered,
        day(last_day(d.month)) as days_in_month,
        max_by(d.connected_services, d.kpi_date) as connected_services_last_day,
        max_by(d.registered_users, d.kpi_date) as registered_users_last_day,
        cast(sum(d.successful_accesses) as bigint) as successful_accesses,
        cast(sum(d.total_accesses) as bigint) as total_accesses,
        count(*) filter (where d.total_accesses > 0) as days_with_accesses,
        count(f.dt) as fully_delivered_days,
        count(*) filter (where d.connected_services > 0) as days_with_services,
        -- summed in day order: a float sum in whatever order the threads meet gives results that
        -- differ in the last bits between two builds of the same data
        {{ ordered_avg('d.active_services / d.connected_services', 'd.kpi_date', 'd.connected_services > 0') }} as utilisation
    from days d
    left join fully_delivered_days f on f.city_code = d.city_code and f.dt = d.kpi_date
    group by all
)

select
    m.city_code,
    m.month,
    m.days_covered,
    m.days_in_month,
    m.days_covered = m.days_in_month as is_covered,
    m.connected_services_last_day,
    m.registered_users_last_day,
    m.successful_accesses,
    m.total_accesses,
    m.days_with_accesses,
    m.fully_delivered_days,
    m.days_with_services,
    cast(coalesce(t.counted_events, 0) as bigint) as counted_events,
    cast(coalesce(t.timely_events, 0) as bigint) as timely_events,
    r.resident_population,
    -- The indicator values, named as in evaluation.yml (null = no data, scores 0).
    cast(m.connected_services_last_day as double) as service_coverage,
    m.successful_accesses / nullif(m.total_accesses, 0) as availability,
    t.timely_events / nullif(t.counted_events, 0) as timeliness,
    m.fully_delivered_days / m.days_in_month as continuity,
    m.utilisation,
    m.registered_users_last_day / nullif(r.resident_population, 0) as user_coverage,
    k.activity_rate as activity,
    k.satisfaction_rate as satisfaction,
    -- 好差评 (reviews.md): the month's on-time rectification and call-back rates, department all.
    rv.on_time_rate as rectification_on_time,
    rv.callback_rate
from months m
left join timeliness t on t.city_code = m.city_code and t.month = m.month
left join {{ ref('kpi_monthly') }} k on k.city_code = m.city_code and k.month = m.month
left join {{ ref('city_reference') }} r on r.city_code = m.city_code
left join {{ ref('review_monthly') }} rv on rv.city_code = m.city_code and rv.month = m.month and rv.department = 'all'
