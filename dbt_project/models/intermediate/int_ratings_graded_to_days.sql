{{ config(materialized='incremental', partition_by=day_partitions(),
          pre_hook="{{ delete_affected_days(['ratings', 'service_access']) }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- Counted ratings per city, rating day, rated access's channel ('unknown' when the rating names
-- no access that was delivered) and score: the grade distribution of reviews.md. Incremental:
-- the rating days a batch of ratings or accesses touched are counted again (an access usually
-- arrives with or before its rating, on the same day).
with rated as (
    select r.city_code, r.event_day, r.access_event_id, r.score
    from {{ ref('stg_landing__ratings') }} r
    {{ only_affected_days(['ratings', 'service_access'], 'r') }}
),

accesses as (
    select a.city_code, a.event_id, a.channel
    from {{ ref('stg_landing__service_access') }} a
    semi join rated on rated.city_code = a.city_code and rated.access_event_id = a.event_id
)

select
    rated.city_code,
    {{ channel_or_unknown('accesses.channel') }} as channel,
    rated.score,
    count(*) as ratings,
    rated.event_day
from rated
left join accesses on accesses.city_code = rated.city_code and accesses.event_id = rated.access_event_id
group by rated.city_code, {{ channel_or_unknown('accesses.channel') }}, rated.score, rated.event_day
