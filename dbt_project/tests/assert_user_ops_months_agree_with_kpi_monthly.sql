-- For every month kpi_monthly has: user_lifecycle's monthly active_users and the stickiness
-- users summed over active days both equal kpi_monthly.mau (and the months are the same).
with lifecycle as (
    select city_code, period_start as month, active_users from {{ ref('user_lifecycle') }} where grain = 'month'
),

stickiness as (
    select city_code, month, sum(users) as users from {{ ref('stickiness_monthly') }} group by all
)

select k.city_code, k.month, k.mau, l.active_users, s.users
from {{ ref('kpi_monthly') }} k
full outer join lifecycle l on l.city_code = k.city_code and l.month = k.month
left join stickiness s on s.city_code = coalesce(k.city_code, l.city_code) and s.month = coalesce(k.month, l.month)
where k.mau is distinct from l.active_users
    or coalesce(s.users, 0) is distinct from k.mau
