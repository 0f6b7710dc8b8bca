-- Per city, series day and channel (empty or null: 'unknown'): accesses, successes, distinct
-- active users and register events (user_ops.md); a row where at least one is not 0.
with accesses as (
    select city_code, event_day as kpi_date, channel, total_accesses, successful_accesses, active_users
    from {{ ref('int_channel_accesses_aggregated_to_days') }}
),

registrations as (
    select city_code, event_day as kpi_date, {{ channel_or_unknown('channel') }} as channel,
           count(*) as new_registrations
    from {{ ref('stg_landing__registrations') }}
    where event_type = 'register'
    group by all
),

joined as (
    select
        coalesce(a.city_code, r.city_code) as city_code,
        coalesce(a.kpi_date, r.kpi_date) as kpi_date,
        coalesce(a.channel, r.channel) as channel,
        coalesce(a.total_accesses, 0) as total_accesses,
        coalesce(a.successful_accesses, 0) as successful_accesses,
        coalesce(a.active_users, 0) as active_users,
        coalesce(r.new_registrations, 0) as new_registrations
    from accesses a
    full outer join registrations r
        on r.city_code = a.city_code and r.kpi_date = a.kpi_date and r.channel = a.channel
)

select j.*
from joined j
semi join {{ ref('int_city_days_enumerated') }} d on d.city_code = j.city_code and d.kpi_date = j.kpi_date
where j.total_accesses > 0 or j.successful_accesses > 0 or j.active_users > 0 or j.new_registrations > 0
