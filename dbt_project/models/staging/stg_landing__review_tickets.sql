{{ config(partition_by=day_partitions(), pre_hook="{{ delete_changed_events('review_tickets', 'ticket_id') }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- One row per rectification ticket (reviews.md): its latest version (latest updated_at; ties the
-- later delivery, file, line: macros/latest_copy.sql). Partitioned by event_day, the local day of
-- opened_at, which every version of a ticket shares; incremental like the event sources
-- (macros/affected_days.sql). handler_note never got here: ingestion keeps only its keyed hash.
select
    t.city_code,
    t.ticket_id,
    t.rating_event_id,
    t.department,
    t.category,
    t.opened_ts_utc,
    t.event_day,
    t.status,
    t.rectified_ts_utc,
    t.rectified_at_local,
    t.replied_ts_utc,
    t.called_back,
    t.updated_ts_utc,
    t.has_handler_note,
    t.dt as delivered_dt,
    t.file,
    t.line
from ({{ changed_events_of('review_tickets', 'ticket_id', 't', 't.*') }}) t
qualify {{ latest_version_rank('t', 'ticket_id', 'updated_ts_utc') }} = 1
