{{ config(materialized=incremental_unless_spark(), incremental_strategy='delete+insert', unique_key=['city_code', 'kpi_date']) }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- DAU, WAU (D-6..D) and MAU (D-29..D) per city and day, exact.
--
-- Each active day a of a user covers the window days [a, a+w-1]; the union of a user's
-- intervals is a set of runs. A run starts (+1) at an active day whose previous active day is
-- w or more days before, and ends (-1) w days after an active day whose next active day is w
-- or more days after. The running sum of these deltas is the distinct count of users active
-- in the window: one pass over user-days, no distinct count per day.
--
-- Incremental: only the days from the earliest day a new batch touched (or the first day not
-- yet computed) are rebuilt, from the user-days of that day minus 29 onwards. Exact, because
-- a window ending on a rebuilt day only sees user-days inside that range.
with starts as (
    {{ rebuild_start_days('service_access', ref('int_city_days_enumerated')) }}
),

user_days as (
    select u.city_code, u.user_key, u.event_day
    from {{ ref('int_user_activity_aggregated_to_days') }} u
    join starts s on s.city_code = u.city_code
    where u.event_day between s.start_day - 29 and s.last_day
),

marked as (
    select
        *,
        lag(event_day) over user_days_in_order as previous_day,
        lead(event_day) over user_days_in_order as next_day
    from user_days
    window user_days_in_order as (partition by city_code, user_key order by event_day)
),

deltas as (
    select city_code, event_day as day, 1 as wau_delta, 0 as mau_delta
    from marked where previous_day is null or {{ days_between('previous_day', 'event_day') }} >= 7
    union all
    select city_code, event_day + 7, -1, 0
    from marked where next_day is null or {{ days_between('event_day', 'next_day') }} >= 7
    union all
    select city_code, event_day, 0, 1
    from marked where previous_day is null or {{ days_between('previous_day', 'event_day') }} >= 30
    union all
    select city_code, event_day + 30, 0, -1
    from marked where next_day is null or {{ days_between('event_day', 'next_day') }} >= 30
),

days as (
    select s.city_code, s.start_day, cast(g.day as date) as day
    from starts s
        {{ series_lateral('s.start_day - 29', 's.last_day', '1 day', 'g', 'day') }}
    where s.start_day <= s.last_day
),

per_day as (
    select
        d.city_code,
        d.start_day,
        d.day,
        coalesce(sum(x.wau_delta), 0) as wau_delta,
        coalesce(sum(x.mau_delta), 0) as mau_delta
    from days d
    left join deltas x on x.city_code = d.city_code and x.day = d.day
    group by all
),

dau as (
    select city_code, event_day as day, count(*) as dau
    from user_days
    group by all
),

windowed as (
    select
        city_code,
        start_day,
        day,
        sum(wau_delta) over running as wau,
        sum(mau_delta) over running as mau_30d
    from per_day
    window running as (partition by city_code order by day rows between unbounded preceding and current row)
)

select
    w.city_code,
    w.day as kpi_date,
    coalesce(dau.dau, 0) as dau,
    cast(w.wau as bigint) as wau,
    cast(w.mau_30d as bigint) as mau_30d
from windowed w
left join dau on dau.city_code = w.city_code and dau.day = w.day
where w.day >= w.start_day
