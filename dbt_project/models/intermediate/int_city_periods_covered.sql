-- The ISO weeks and calendar months each city's day series covers completely (every day has a
-- kpi_daily row): the periods the user-operations marts have rows for.
with series as (
    select city_code, min(kpi_date) as first_day, max(kpi_date) as last_day
    from {{ ref('int_city_days_enumerated') }}
    group by city_code
),

periods as (
    select s.city_code, 'week' as grain, cast(p.start as date) as period_start,
           cast(p.start + interval 6 day as date) as period_end, s.first_day, s.last_day
    from series s
        {{ series_lateral("date_trunc('week', s.first_day)", 's.last_day', '7 day', 'p', 'start') }}
    union all
    select s.city_code, 'month', cast(p.start as date),
           cast(last_day(p.start) as date), s.first_day, s.last_day
    from series s
        {{ series_lateral("date_trunc('month', s.first_day)", 's.last_day', '1 month', 'p', 'start') }}
)

select city_code, grain, period_start, period_end
from periods
where period_start >= first_day and period_end <= last_day
