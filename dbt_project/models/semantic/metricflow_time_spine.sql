-- The day spine MetricFlow joins to (cumulative metrics, filled gaps). Wide enough for any
-- initial load and any contract; 18k rows, published with the marts so queries on the
-- read-only snapshot find it.
select cast(t.d as date) as date_day
from (select 1 as one) o
    {{ series_lateral("date '2000-01-01'", "date '2049-12-31'", '1 day', 't', 'd') }}
