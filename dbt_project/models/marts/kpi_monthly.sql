-- Monthly KPIs per city and calendar month (kpis.md), for every month the city's day series
-- covers completely (first to last day): the month-end values exist and the figures can be
-- settled. connected_services and registered_users are the daily values on the month's last day.
with daily as (
    select *, cast(date_trunc('month', kpi_date) as date) as month
    from {{ ref('kpi_daily') }}
),

month_end as (
    select
        city_code,
        month,
        count(*) as days_covered,
        max(kpi_date) as last_day,
        max_by(connected_services, kpi_date) as connected_services,
        max_by(registered_users, kpi_date) as registered_users
    from daily
    group by all
),

-- Sums over the whole month by event day (late events before the series start included).
ratings as (
    select city_code, cast(date_trunc('month', event_day) as date) as month,
           sum(ratings) as ratings, sum(good_ratings) as good_ratings
    from {{ ref('int_ratings_aggregated_to_days') }}
    group by all
),

accesses as (
    select city_code, cast(date_trunc('month', event_day) as date) as month, sum(total_accesses) as total_accesses
    from {{ ref('int_service_accesses_aggregated_to_days') }}
    group by all
),

registrations as (
    select city_code, cast(date_trunc('month', event_day) as date) as month, sum(new_registrations) as new_registrations
    from {{ ref('int_accounts_aggregated_to_days') }}
    group by all
)

select
    m.city_code,
    m.month,
    m.connected_services,
    m.registered_users,
    coalesce(u.mau, 0) as mau,
    coalesce(u.mau, 0) / nullif(m.registered_users, 0) as activity_rate,
    r.good_ratings / nullif(r.ratings, 0) as satisfaction_rate,
    cast(coalesce(g.new_registrations, 0) as bigint) as new_registrations,
    cast(coalesce(a.total_accesses, 0) as bigint) as total_accesses,
    coalesce(r.ratings, 0) as ratings,
    m.days_covered,
    m.days_covered = day(last_day(m.month)) as is_complete
from month_end m
left join {{ ref('int_active_users_aggregated_to_months') }} u on u.city_code = m.city_code and u.month = m.month
left join ratings r on r.city_code = m.city_code and r.month = m.month
left join accesses a on a.city_code = m.city_code and a.month = m.month
left join registrations g on g.city_code = m.city_code and g.month = m.month
where m.days_covered = day(last_day(m.month))
