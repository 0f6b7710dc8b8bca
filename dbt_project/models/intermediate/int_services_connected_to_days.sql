-- The services connected on each day of each city's series: those with online_date <= D
-- and (offline_date empty or > D) in the most recent catalog snapshot with dt <= D.
-- No row for days before a city's first snapshot.
with snapshots as (
    select distinct city_code, snapshot_dt from {{ ref('stg_landing__service_catalog') }}
),

day_snapshot as (
    select d.city_code, d.kpi_date, max(s.snapshot_dt) as snapshot_dt
    from {{ ref('int_city_days_enumerated') }} d
    join snapshots s on s.city_code = d.city_code and s.snapshot_dt <= d.kpi_date
    group by all
)

select
    ds.city_code,
    ds.kpi_date,
    c.service_id,
    c.service_name,
    c.department,
    c.category,
    ds.snapshot_dt
from day_snapshot ds
join {{ ref('stg_landing__service_catalog') }} c
    on c.city_code = ds.city_code and c.snapshot_dt = ds.snapshot_dt
where c.online_date <= ds.kpi_date
    and (c.offline_date is null or c.offline_date > ds.kpi_date)
