{{ config(materialized=incremental_unless_spark(), incremental_strategy='delete+insert', unique_key=['city_code', 'registration_day']) }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- 7-day activation of first-time registrants, per city and series day (user_ops.md).
-- registrations: users whose first registration falls on the day; activated_7d: active on a
-- day of registration_day .. +6; verified_7d: highest auth_level over register / verify
-- events with event day <= registration_day + 6 is 2 or more. window_complete once
-- registration_day + 6 is a series day.
--
-- Incremental: a touched day D (accesses or account events) can change the rows of
-- registration days D-6 onwards (a late first registration also empties a later day), so
-- rows from the rebuild start minus 6 days are replaced; only user-days from there are read.
with starts as (
    {{ rebuild_start_days(['service_access', 'registrations'], ref('int_city_days_enumerated'), 'registration_day') }}
),

days as (
    select d.city_code, d.kpi_date as registration_day, s.last_day
    from {{ ref('int_city_days_enumerated') }} d
    join starts s on s.city_code = d.city_code and d.kpi_date >= s.start_day - 6
),

registrants as (
    select f.city_code, f.user_key, f.registration_day
    from {{ ref('int_users_first_registered') }} f
    semi join days d on d.city_code = f.city_code and d.registration_day = f.registration_day
),

activated as (
    select r.city_code, r.user_key
    from registrants r
    semi join {{ ref('int_user_activity_aggregated_to_days') }} u
        on u.city_code = r.city_code and u.user_key = r.user_key
        and u.event_day between r.registration_day and r.registration_day + 6
),

verified as (
    select r.city_code, r.user_key
    from registrants r
    join {{ ref('stg_landing__registrations') }} g
        on g.city_code = r.city_code and g.user_key = r.user_key
        and g.event_type in ('register', 'verify') and g.event_day <= r.registration_day + 6
    group by all
    having max(g.auth_level) >= 2
),

per_day as (
    select
        r.city_code,
        r.registration_day,
        count(*) as registrations,
        count(a.user_key) as activated_7d,
        count(v.user_key) as verified_7d
    from registrants r
    left join activated a on a.city_code = r.city_code and a.user_key = r.user_key
    left join verified v on v.city_code = r.city_code and v.user_key = r.user_key
    group by all
)

select
    d.city_code,
    d.registration_day,
    coalesce(p.registrations, 0) as registrations,
    coalesce(p.activated_7d, 0) as activated_7d,
    coalesce(p.verified_7d, 0) as verified_7d,
    d.registration_day + 6 <= d.last_day as window_complete
from days d
left join per_day p on p.city_code = d.city_code and p.registration_day = d.registration_day
