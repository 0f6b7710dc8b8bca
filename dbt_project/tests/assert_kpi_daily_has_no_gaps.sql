-- Every city has one row per day from its first to its last day, none missing.
select city_code, min(kpi_date) as first_day, max(kpi_date) as last_day, count(*) as days
from {{ ref('kpi_daily') }}
group by city_code
having count(*) <> {{ days_between('min(kpi_date)', 'max(kpi_date)') }} + 1
