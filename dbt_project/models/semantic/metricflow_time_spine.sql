-- The day spine MetricFlow joins to (cumulative metrics, filled gaps). Wide enough for any
-- initial load and any contract; 18k rows, published with the marts so queries on the
-- read-only snapshot find it.
select cast(d as date) as date_day
from range(date '2000-01-01', date '2050-01-01', interval 1 day) t(d)
