{{ config(materialized=incremental_unless_spark(), incremental_strategy='delete+insert', unique_key=['city_code', 'grain', 'period_start']) }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}
-- depends_on: {{ ref('stg_audit__deliveries') }}

-- New, returning, resurrecting and dormant users per city, grain (week / month) and covered
-- period P (user_ops.md). From each user-period's previous active period: none = new,
-- P-1 = returning, earlier = resurrecting. Dormant = active in P-1 and not in P, i.e. the
-- active users of P-1 minus the returning users of P (P-1 need not be covered).
--
-- Incremental: the covered periods from the first one a new batch can change
-- (user_ops_rebuild_from) are replaced (every covered period has a row, so delete+insert by
-- key replaces exactly them); only user-periods from the period before are read.
with periods as (
    select p.city_code, p.grain, p.period_start
    from {{ ref('int_city_periods_covered') }} p
    {% if is_incremental() %}
    join ({{ user_ops_rebuild_from() }}) r on r.city_code = p.city_code
    where p.period_start >= case p.grain when 'week' then r.first_week else r.first_month end
    {% endif %}
),

counts as (
    select
        u.city_code,
        u.grain,
        u.period_start,
        count(*) as active_users,
        count(*) filter (where u.previous_active_period is null) as new_users,
        count(*) filter (where u.previous_active_period = {{ previous_period('u.grain', 'u.period_start') }}) as returning_users,
        count(*) filter (where u.previous_active_period < {{ previous_period('u.grain', 'u.period_start') }}) as resurrecting_users
    from {{ ref('int_user_activity_aggregated_to_periods') }} u
    {% if is_incremental() %}
    semi join ({{ user_ops_rebuild_from() }}) r
        on r.city_code = u.city_code
        and u.period_start >= case u.grain when 'week' then cast(r.first_week - 7 as date)
                                           else cast(r.first_month - interval 1 month as date) end
    {% endif %}
    group by all
)

select
    p.city_code,
    p.grain,
    p.period_start,
    coalesce(c.active_users, 0) as active_users,
    coalesce(c.new_users, 0) as new_users,
    coalesce(c.returning_users, 0) as returning_users,
    coalesce(c.resurrecting_users, 0) as resurrecting_users,
    coalesce(before.active_users, 0) - coalesce(c.returning_users, 0) as dormant_users
from periods p
left join counts c
    on c.city_code = p.city_code and c.grain = p.grain and c.period_start = p.period_start
left join counts before
    on before.city_code = p.city_code and before.grain = p.grain
    and before.period_start = {{ previous_period('p.grain', 'p.period_start') }}
