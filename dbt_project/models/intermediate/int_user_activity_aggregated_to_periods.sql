{{ config(materialized=incremental_unless_spark(), pre_hook="{{ delete_user_periods_from_rebuild_start() }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- One row per city, grain (ISO week / calendar month), period and active user: the number of
-- days the user was active in the period and the user's previous period with activity (null:
-- never active before). The building block of lifecycle, retention and stickiness.
--
-- Incremental: every period from the earliest one a new batch touched is rebuilt (a late
-- access changes its own period and the previous_active_period of the user's next period);
-- a user's last period before that start comes from the rows already built, so only the
-- user-days of the rebuilt range are read.
with starts as (
    {% if is_incremental() %}
    {{ user_period_rebuild_starts() }}
    {% else %}
    select cast(null as string) as city_code, cast(null as string) as grain, cast(null as date) as start_period where false
    {% endif %}
),

user_days as (
    select u.city_code, u.event_day, u.user_key
    from {{ ref('int_user_activity_aggregated_to_days') }} u
    {% if is_incremental() %}
    semi join (select city_code, min(start_period) as first_day from starts group by all) s
        on s.city_code = u.city_code and u.event_day >= s.first_day
    {% endif %}
),

periods as (
    select p.city_code, p.grain, p.period_start, p.user_key, count(*) as active_days
    from (
        select city_code, 'week' as grain, cast(date_trunc('week', event_day) as date) as period_start, user_key
        from user_days
        union all
        select city_code, 'month', cast(date_trunc('month', event_day) as date), user_key
        from user_days
    ) p
    {% if is_incremental() %}
    semi join starts s on s.city_code = p.city_code and s.grain = p.grain and p.period_start >= s.start_period
    {% endif %}
    group by all
),

with_earlier as (
    select city_code, grain, period_start, user_key, active_days, false as is_earlier
    from periods
    {% if is_incremental() %}
    union all
    -- each user's last active period before the rebuilt range
    select t.city_code, t.grain, max(t.period_start), t.user_key, null, true
    from {{ this }} t
    join starts s on s.city_code = t.city_code and s.grain = t.grain and t.period_start < s.start_period
    group by t.city_code, t.grain, t.user_key
    {% endif %}
),

ordered as (
    select
        *,
        lag(period_start) over (partition by city_code, grain, user_key order by period_start) as previous_active_period
    from with_earlier
)

select city_code, grain, period_start, user_key, cast(active_days as bigint) as active_days, previous_active_period
from ordered
where not is_earlier
