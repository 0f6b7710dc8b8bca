{{ config(materialized='incremental', partition_by=day_partitions(), pre_hook="{{ delete_affected_days('ratings') }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- Ratings per city and event day; good = score 4 or 5.
select
    r.city_code,
    r.event_day,
    count(*) as ratings,
    count(*) filter (where r.score >= 4) as good_ratings
from {{ ref('stg_landing__ratings') }} r
{{ only_affected_days('ratings', 'r') }}
group by all
