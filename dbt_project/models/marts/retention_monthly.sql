-- Cohort retention (user_ops.md): per city, cohort month (first registration) and acquisition
-- channel (plus 'all'), for every covered month cohort_month + k (k >= 0): the cohort's users
-- and those of them active in that month. Registered users only.
with cohort_members as (
    select city_code, cohort_month, acquisition_channel as channel, user_key
    from {{ ref('int_users_first_registered') }}
    union all
    select city_code, cohort_month, 'all', user_key
    from {{ ref('int_users_first_registered') }}
),

cohorts as (
    select city_code, cohort_month, channel, count(*) as cohort_users
    from cohort_members
    group by all
),

covered_months as (
    select city_code, period_start as month
    from {{ ref('int_city_periods_covered') }}
    where grain = 'month'
),

retained as (
    select m.city_code, m.cohort_month, m.channel, a.period_start as month, count(*) as retained_users
    from cohort_members m
    join {{ ref('int_user_activity_aggregated_to_periods') }} a
        on a.city_code = m.city_code and a.user_key = m.user_key
        and a.grain = 'month' and a.period_start >= m.cohort_month
    semi join covered_months c on c.city_code = a.city_code and c.month = a.period_start
    group by all
)

select
    c.city_code,
    c.cohort_month,
    c.channel,
    cast(datediff('month', c.cohort_month, m.month) as integer) as months_since,
    c.cohort_users,
    coalesce(r.retained_users, 0) as retained_users,
    coalesce(r.retained_users, 0) / c.cohort_users as retention_rate
from cohorts c
join covered_months m on m.city_code = c.city_code and m.month >= c.cohort_month
left join retained r
    on r.city_code = c.city_code and r.cohort_month = c.cohort_month and r.channel = c.channel and r.month = m.month
