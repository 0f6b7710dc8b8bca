-- The operators' daily KPIs: one row per city and day of its delivery series (kpis.md).
with days as (
    select city_code, kpi_date from {{ ref('int_city_days_enumerated') }}
),

accounts as (
    -- Running sums over every event day, initial load included, then read on series days.
    select
        city_code,
        day,
        sum(registered_delta) over running as registered_users,
        sum(verified_delta) over running as verified_users,
        new_registrations,
        cancellations
    from (
        select city_code, day, sum(registered_delta) as registered_delta, sum(verified_delta) as verified_delta,
               sum(new_registrations) as new_registrations, sum(cancellations) as cancellations
        from (
            select city_code, event_day as day, registered_delta, verified_delta, new_registrations, cancellations
            from {{ ref('int_accounts_aggregated_to_days') }}
            union all
            select city_code, kpi_date, 0, 0, 0, 0 from days
        )
        group by all
    )
    window running as (partition by city_code order by day rows between unbounded preceding and current row)
),

connected as (
    select city_code, kpi_date, count(*) as connected_services
    from {{ ref('int_services_connected_to_days') }}
    group by all
),

service_days as (
    select city_code, event_day as kpi_date, service_id, total_accesses, successful_accesses
    from {{ ref('int_service_accesses_aggregated_to_days') }}
),

accesses as (
    select city_code, kpi_date, sum(total_accesses) as total_accesses, sum(successful_accesses) as successful_accesses
    from service_days
    group by all
),

active as (
    select c.city_code, c.kpi_date, count(*) as active_services
    from {{ ref('int_services_connected_to_days') }} c
    join service_days s
        on s.city_code = c.city_code and s.kpi_date = c.kpi_date and s.service_id = c.service_id
    where s.successful_accesses > 0
    group by all
),

ratings as (
    select city_code, event_day as kpi_date, ratings, good_ratings
    from {{ ref('int_ratings_aggregated_to_days') }}
)

select
    d.city_code,
    d.kpi_date,
    coalesce(c.connected_services, 0) as connected_services,
    coalesce(act.active_services, 0) as active_services,
    cast(a.registered_users as bigint) as registered_users,
    cast(a.new_registrations as bigint) as new_registrations,
    cast(a.cancellations as bigint) as cancellations,
    cast(a.verified_users as bigint) as verified_users,
    coalesce(w.dau, 0) as dau,
    coalesce(w.wau, 0) as wau,
    coalesce(w.mau_30d, 0) as mau_30d,
    coalesce(x.total_accesses, 0) as total_accesses,
    coalesce(x.successful_accesses, 0) as successful_accesses,
    x.successful_accesses / nullif(x.total_accesses, 0) as success_rate,
    coalesce(r.ratings, 0) as ratings,
    r.good_ratings / nullif(r.ratings, 0) as satisfaction_rate,
    coalesce(r.good_ratings, 0) as good_ratings
from days d
left join accounts a on a.city_code = d.city_code and a.day = d.kpi_date
left join connected c on c.city_code = d.city_code and c.kpi_date = d.kpi_date
left join active act on act.city_code = d.city_code and act.kpi_date = d.kpi_date
left join {{ ref('int_active_users_windowed') }} w on w.city_code = d.city_code and w.kpi_date = d.kpi_date
left join accesses x on x.city_code = d.city_code and x.kpi_date = d.kpi_date
left join ratings r on r.city_code = d.city_code and r.kpi_date = d.kpi_date
