{{ config(materialized='incremental', partition_by=day_partitions(),
          pre_hook="{{ delete_affected_days(['registrations', 'service_access', 'ratings']) }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- Counted events (registrations, accesses, ratings) per city and event day, and how many of
-- them arrived on time: the winning copy (staging keeps the latest delivery's) came in a
-- delivery with dt <= event day + 1. A late re-delivery of an event makes it late, because
-- the figures then rest on that copy. Feeds the scorecard's timeliness.
{% set sources = ['registrations', 'service_access', 'ratings'] %}
with events as (
    {% for source in sources %}
    select e.city_code, e.event_day, e.delivered_dt
    from {{ ref('stg_landing__' ~ source) }} e
    {{ only_affected_days(sources, 'e') }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select
    city_code,
    event_day,
    count(*) as counted_events,
    count(*) filter (where delivered_dt <= event_day + 1) as timely_events
from events
group by all
