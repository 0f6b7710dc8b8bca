{{ config(materialized='incremental', partition_by=day_partitions(), pre_hook="{{ delete_affected_days('service_access') }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- Accesses per city, day and service (anonymous included); users = distinct logged-in
-- users who opened the service that day, whatever the outcome.
select
    a.city_code,
    a.event_day,
    a.service_id,
    count(*) as total_accesses,
    count(*) filter (where a.outcome = 'success') as successful_accesses,
    count(distinct a.user_key) as users
from {{ ref('stg_landing__service_access') }} a
{{ only_affected_days('service_access', 'a') }}
group by all
