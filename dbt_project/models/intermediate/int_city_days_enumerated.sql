-- The day series of each city: every day from its earliest complete delivery date (any
-- source) to its latest, days without events included.
with bounds as (
    select city_code, min(dt) as first_day, max(dt) as last_day
    from {{ ref('stg_audit__deliveries') }}
    group by city_code
)
select
    b.city_code,
    cast(d.day as date) as kpi_date
from bounds b
    {{ series_lateral('b.first_day', 'b.last_day', '1 day', 'd', 'day') }}
