{{ config(materialized=incremental_unless_spark(), incremental_strategy='delete+insert', unique_key=['city_code', 'kpi_date']) }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- Per city, day and service: accesses, successes and users, for every service that was
-- connected or accessed that day (accessed services missing from the catalog included,
-- with empty names). Incremental: only days from the earliest day new accesses or a new
-- catalog snapshot touched are rebuilt (delete+insert by city and day).
with starts as (
    {{ rebuild_start_days(['service_access', 'service_catalog'], ref('int_city_days_enumerated')) }}
),

days as (
    select d.city_code, d.kpi_date
    from {{ ref('int_city_days_enumerated') }} d
    join starts s on s.city_code = d.city_code and d.kpi_date >= s.start_day
),

accessed as (
    select a.city_code, a.event_day as kpi_date, a.service_id, a.total_accesses, a.successful_accesses, a.users
    from {{ ref('int_service_accesses_aggregated_to_days') }} a
    semi join days d on d.city_code = a.city_code and d.kpi_date = a.event_day
),

connected as (
    select c.city_code, c.kpi_date, c.service_id, c.service_name, c.department, c.category
    from {{ ref('int_services_connected_to_days') }} c
    semi join days d on d.city_code = c.city_code and d.kpi_date = c.kpi_date
),

-- Names of accessed services that are not connected that day: from the latest snapshot
-- up to that day that lists them (a later snapshot only renames later days, which is what
-- keeps incremental and full builds identical).
catalog_names as (
    select city_code, service_id, snapshot_dt, service_name, department, category
    from {{ ref('stg_landing__service_catalog') }}
),

joined as (
    select
        coalesce(c.city_code, a.city_code) as city_code,
        coalesce(c.kpi_date, a.kpi_date) as kpi_date,
        coalesce(c.service_id, a.service_id) as service_id,
        c.service_name,
        c.department,
        c.category,
        c.service_id is not null as is_connected,
        coalesce(a.total_accesses, 0) as total_accesses,
        coalesce(a.successful_accesses, 0) as successful_accesses,
        coalesce(a.users, 0) as users
    from connected c
    full outer join accessed a
        on a.city_code = c.city_code and a.kpi_date = c.kpi_date and a.service_id = c.service_id
),

named as (
    {{ latest_as_of_join('joined', 'j', 'catalog_names', 'n', ['city_code', 'service_id'], 'kpi_date', 'snapshot_dt',
                         ['service_name as catalog_service_name', 'department as catalog_department',
                          'category as catalog_category'], ['city_code', 'service_id']) }}
)

select
    city_code,
    kpi_date,
    service_id,
    coalesce(service_name, catalog_service_name) as service_name,
    coalesce(department, catalog_department) as department,
    coalesce(category, catalog_category) as category,
    is_connected,
    total_accesses,
    successful_accesses,
    users
from named
