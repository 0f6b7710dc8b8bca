{{ config(materialized=incremental_unless_spark(), pre_hook="{{ delete_retention_from_rebuild() }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}
-- depends_on: {{ ref('stg_audit__deliveries') }}

-- Cohort retention (user_ops.md): per city, cohort month (first registration) and acquisition
-- channel (plus 'all'), for every covered month cohort_month + k (k >= 0): the cohort's users
-- and those of them active in that month. Registered users only.
--
-- Incremental: a new day does not recount years of cohorts x months. Rows are redone for the
-- months from the first one new accesses or deliveries can change (every cohort), and for the
-- cohorts from the month of the earliest touched account event (every month: a late first
-- registration moves a user between cohorts); the pre_hook drops exactly those rows.
with rebuild as (
    {% if is_incremental() %}
    {{ retention_rebuild_from() }}
    {% else %}
    select city_code, min(period_start) as first_month, cast(null as date) as first_cohort
    from {{ ref('int_city_periods_covered') }}
    group by city_code
    {% endif %}
),

cohort_members as (
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

-- the (cohort, covered month) cells to (re)compute
cells as (
    select c.city_code, c.cohort_month, c.channel, c.cohort_users, p.period_start as month
    from cohorts c
    join {{ ref('int_city_periods_covered') }} p
        on p.city_code = c.city_code and p.grain = 'month' and p.period_start >= c.cohort_month
    join rebuild r on r.city_code = c.city_code
    where p.period_start >= r.first_month or c.cohort_month >= r.first_cohort
),

retained as (
    select m.city_code, m.cohort_month, m.channel, a.period_start as month, count(*) as retained_users
    from cohort_members m
    join {{ ref('int_user_activity_aggregated_to_periods') }} a
        on a.city_code = m.city_code and a.user_key = m.user_key
        and a.grain = 'month' and a.period_start >= m.cohort_month
    join rebuild r on r.city_code = a.city_code
    where a.period_start >= least(r.first_month, r.first_cohort)
    group by all
)

select
    c.city_code,
    c.cohort_month,
    c.channel,
    cast((year(c.month) - year(c.cohort_month)) * 12 + month(c.month) - month(c.cohort_month) as integer) as months_since,
    c.cohort_users,
    coalesce(r.retained_users, 0) as retained_users,
    coalesce(r.retained_users, 0) / c.cohort_users as retention_rate
from cells c
left join retained r
    on r.city_code = c.city_code and r.cohort_month = c.cohort_month and r.channel = c.channel and r.month = c.month
