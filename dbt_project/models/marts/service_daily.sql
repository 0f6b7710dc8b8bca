-- Per city, day and service: accesses, successes and users, for every service that was
-- connected or accessed that day (accessed services missing from the catalog included,
-- with empty names).
with days as (
    select city_code, kpi_date from {{ ref('int_city_days_enumerated') }}
),

accessed as (
    select a.city_code, a.event_day as kpi_date, a.service_id, a.total_accesses, a.successful_accesses, a.users
    from {{ ref('int_service_accesses_aggregated_to_days') }} a
    semi join days d on d.city_code = a.city_code and d.kpi_date = a.event_day
),

connected as (
    select city_code, kpi_date, service_id, service_name, department, category
    from {{ ref('int_services_connected_to_days') }}
),

-- Names of services from the latest snapshot that lists them (for accessed services that
-- are not connected on that day).
latest_names as (
    select city_code, service_id,
           arg_max(service_name, snapshot_dt) as service_name,
           arg_max(department, snapshot_dt) as department,
           arg_max(category, snapshot_dt) as category
    from {{ ref('stg_landing__service_catalog') }}
    group by all
)

select
    coalesce(c.city_code, a.city_code) as city_code,
    coalesce(c.kpi_date, a.kpi_date) as kpi_date,
    coalesce(c.service_id, a.service_id) as service_id,
    coalesce(c.service_name, n.service_name) as service_name,
    coalesce(c.department, n.department) as department,
    coalesce(c.category, n.category) as category,
    c.service_id is not null as is_connected,
    coalesce(a.total_accesses, 0) as total_accesses,
    coalesce(a.successful_accesses, 0) as successful_accesses,
    coalesce(a.users, 0) as users
from connected c
full outer join accessed a
    on a.city_code = c.city_code and a.kpi_date = c.kpi_date and a.service_id = c.service_id
left join latest_names n
    on n.city_code = coalesce(c.city_code, a.city_code) and n.service_id = coalesce(c.service_id, a.service_id)
