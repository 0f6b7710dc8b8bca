{{ config(materialized=incremental_unless_spark(), pre_hook="{{ delete_months_from_rebuild() }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}
-- depends_on: {{ ref('stg_audit__deliveries') }}

-- Users by number of active days, per city and covered month (user_ops.md); rows only where
-- users > 0. A month's users sum to its kpi_monthly.mau. Incremental: the months from the
-- first one a new batch can change are dropped (pre_hook) and counted again.
select
    a.city_code,
    a.period_start as month,
    a.active_days,
    count(*) as users
from {{ ref('int_user_activity_aggregated_to_periods') }} a
semi join {{ ref('int_city_periods_covered') }} c
    on c.city_code = a.city_code and c.grain = 'month' and c.period_start = a.period_start
{% if is_incremental() %}
semi join ({{ user_ops_rebuild_from() }}) r on r.city_code = a.city_code and a.period_start >= r.first_month
{% endif %}
where a.grain = 'month'
group by all
