-- Users by number of active days, per city and covered month (user_ops.md); rows only where
-- users > 0. A month's users sum to its kpi_monthly.mau.
select
    a.city_code,
    a.period_start as month,
    a.active_days,
    count(*) as users
from {{ ref('int_user_activity_aggregated_to_periods') }} a
semi join {{ ref('int_city_periods_covered') }} c
    on c.city_code = a.city_code and c.grain = 'month' and c.period_start = a.period_start
where a.grain = 'month'
group by all
