-- New, returning, resurrecting and dormant users per city, grain (week / month) and covered
-- period P (user_ops.md). From each user-period's previous active period: none = new,
-- P-1 = returning, earlier = resurrecting. Dormant = active in P-1 and not in P, i.e. the
-- active users of P-1 minus the returning users of P (P-1 need not be covered).
with counts as (
    select
        city_code,
        grain,
        period_start,
        count(*) as active_users,
        count(*) filter (where previous_active_period is null) as new_users,
        count(*) filter (where previous_active_period = {{ previous_period('grain', 'period_start') }}) as returning_users,
        count(*) filter (where previous_active_period < {{ previous_period('grain', 'period_start') }}) as resurrecting_users
    from {{ ref('int_user_activity_aggregated_to_periods') }}
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
from {{ ref('int_city_periods_covered') }} p
left join counts c
    on c.city_code = p.city_code and c.grain = p.grain and c.period_start = p.period_start
left join counts before
    on before.city_code = p.city_code and before.grain = p.grain
    and before.period_start = {{ previous_period('p.grain', 'p.period_start') }}
