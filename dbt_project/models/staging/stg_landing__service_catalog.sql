{{ config(partition_by=day_partitions('snapshot_dt'), pre_hook="{{ delete_affected_days('service_catalog', 'snapshot_dt') }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- Catalog snapshots as delivered: one row per service per snapshot (a service listed twice
-- in one snapshot keeps its last line). A snapshot whose file was set aside has no rows
-- and so does not count as a snapshot.
select
    c.city_code,
    c.dt as snapshot_dt,
    c.service_id,
    c.service_name,
    c.department,
    c.category,
    c.online_date,
    c.offline_date
from {{ source('landing', 'service_catalog') }} c
{{ only_affected_days('service_catalog', 'c', 'dt') }}
qualify row_number() over (partition by c.city_code, c.dt, c.service_id order by c.file desc, c.line desc) = 1
