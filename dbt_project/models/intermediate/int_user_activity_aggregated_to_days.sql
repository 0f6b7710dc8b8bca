{{ config(materialized='incremental', partition_by=day_partitions(), pre_hook="{{ delete_affected_days('service_access') }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- One row per city, day and logged-in user with at least one successful access that day:
-- the exact building block of DAU / WAU / MAU (no approximate sketches: these are paid on).
select
    a.city_code,
    a.event_day,
    a.user_key,
    count(*) as successful_accesses
from {{ ref('stg_landing__service_access') }} a
{{ only_affected_days('service_access', 'a') }}
where a.outcome = 'success' and a.user_key is not null
group by all
