{{ config(materialized=incremental_unless_spark(), pre_hook="{{ delete_funnels_from_rebuild() }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}
-- depends_on: {{ ref('stg_audit__deliveries') }}

-- Funnels of the run's funnels.yml (user_ops.md, "Funnels"), per city, funnel, grain, covered
-- period, entry channel (plus 'all') and step. A user enters at its earliest event of the period
-- matching step 1 (with first: true only its first such event ever); step k is the earliest
-- matching event, not one that reached an earlier step, at or after the instant of step k-1 and
-- within entry + window_days x 24 h (ties: smaller event_id). Service filters read the most
-- recent catalog snapshot with dt <= the event day.
--
-- Incremental: for each funnel, the periods from the one holding (first day a new batch touched
-- or delivered) - window_days are dropped (pre_hook) and rebuilt; a funnel whose definition
-- changed (a new fingerprint) has no rows left and is rebuilt whole, the others are untouched.
{%- set step_numbers = funnel_step_rows() | map(attribute='step') | list %}
{%- set max_step = step_numbers | max if step_numbers else 1 %}
with steps as (
    select * from {{ ref('int_funnel_steps') }}
),

funnels as (
    select funnel, any_value(definition_fingerprint) as definition_fingerprint, any_value(window_days) as window_days
    from steps
    group by funnel
),

series as (
    select city_code, max(kpi_date) as last_day
    from {{ ref('int_city_days_enumerated') }}
    group by city_code
),

-- per city and funnel: rebuilt whole (no rows of its definition yet) or from first_day
rebuild as (
    select s.city_code, f.funnel, f.window_days,
        {% if is_incremental() %}
        not exists (select 1 from {{ this }} t where t.city_code = s.city_code and t.funnel = f.funnel) as whole,
        r.first_day
        {% else %}
        true as whole, cast(null as date) as first_day
        {% endif %}
    from series s
    cross join funnels f
    {% if is_incremental() %}
    left join ({{ funnel_rebuild_from() }}) r on r.city_code = s.city_code
    {% endif %}
),

periods as (
    select p.city_code, b.funnel, b.window_days, p.grain, p.period_start, p.period_end
    from {{ ref('int_city_periods_covered') }} p
    join rebuild b on b.city_code = p.city_code
    where b.whole or p.period_start >= {{ funnel_first_period('p.grain', 'b.first_day', 'b.window_days') }}
),

-- the event days a rebuild reads: its periods' days and their windows
read_days as (
    select city_code, min(period_start) as first_day, max(period_end) + max(window_days) as last_day
    from periods
    group by city_code
),

-- the catalog snapshot of each event day: the most recent with dt <= the day
snapshots as (
    select distinct city_code, snapshot_dt from {{ ref('stg_landing__service_catalog') }}
),

all_events as (
    select a.city_code, a.user_key, 'access' as event, 'a:' || a.event_id as event_key, a.event_id,
           a.event_ts_utc as ts, a.event_day, a.channel, cast(null as integer) as auth_level,
           a.service_id, a.outcome
    from {{ ref('stg_landing__service_access') }} a
    where a.user_key is not null
    union all
    select g.city_code, g.user_key, g.event_type, 'g:' || g.event_id, g.event_id,
           g.event_ts_utc, g.event_day, g.channel, g.auth_level, null, null
    from {{ ref('stg_landing__registrations') }} g
    where g.user_key is not null and g.event_type in ('register', 'verify')
),

day_snapshots as (
    select d.city_code, d.event_day, max(s.snapshot_dt) as snapshot_dt
    from (select distinct city_code, event_day from all_events) d
    left join snapshots s on s.city_code = d.city_code and s.snapshot_dt <= d.event_day
    group by d.city_code, d.event_day
),

-- the events a rebuild reads, with their service's category and department that day
events as (
    {{ funnel_events_with_catalog('all_events', 'read_days') }}
),

matched as (
    select s.funnel, s.step, e.*
    from events e
    join steps s on {{ funnel_step_matches('e', 's') }}
    where not (s.step = 1 and s.is_first)
),

-- first: true: only the user's first matching event ever. Its earliest in the days read, unless
-- the user has a matching event before them (the history before is only probed, not ranked).
first_ever as (
    {% if funnel_step_rows() | selectattr('is_first') | list %}
    select s.funnel, s.step, e.*
    from events e
    join steps s on s.step = 1 and s.is_first and {{ funnel_step_matches('e', 's') }}
    anti join (
        select distinct h.city_code, h.user_key, hs.funnel
        from ({{ funnel_events_with_catalog('all_events') }}) h
        join steps hs on hs.step = 1 and hs.is_first and {{ funnel_step_matches('h', 'hs') }}
        join read_days r on r.city_code = h.city_code
        where h.event_day < r.first_day
    ) earlier on earlier.city_code = e.city_code and earlier.user_key = e.user_key and earlier.funnel = s.funnel
    qualify row_number() over (partition by e.city_code, s.funnel, e.user_key order by e.ts, e.event_id) = 1
    {% else %}
    select * from matched where false
    {% endif %}
),

reached_1 as (
    select c.city_code, c.funnel, p.grain, p.period_start, c.user_key,
           {{ channel_or_unknown('c.channel') }} as entry_channel, c.event_day as entry_day, p.window_days,
           {{ plus_days('c.ts', 'p.window_days') }} as window_end, c.ts as previous_ts, c.event_key as key_1,
           1 as step, cast(null as double) as seconds_from_previous
    from (select * from matched where step = 1 union all select * from first_ever) c
    join periods p
        on p.city_code = c.city_code and p.funnel = c.funnel and c.event_day between p.period_start and p.period_end
    qualify row_number() over (partition by c.city_code, c.funnel, p.grain, p.period_start, c.user_key
                               order by c.ts, c.event_id) = 1
),

{% for k in range(2, max_step + 1) %}
reached_{{ k }} as (
    select r.city_code, r.funnel, r.grain, r.period_start, r.user_key, r.entry_channel, r.entry_day,
           r.window_days, r.window_end, m.ts as previous_ts,
           {% for j in range(1, k) %}r.key_{{ j }}, {% endfor %}m.event_key as key_{{ k }},
           {{ k }} as step, {{ epoch_seconds('m.ts') }} - {{ epoch_seconds('r.previous_ts') }} as seconds_from_previous
    from reached_{{ k - 1 }} r
    join matched m
        on m.city_code = r.city_code and m.user_key = r.user_key and m.funnel = r.funnel and m.step = {{ k }}
        and m.ts >= r.previous_ts and m.ts <= r.window_end
        -- not an event that reached an earlier step
        and m.event_key not in ({% for j in range(1, k) %}r.key_{{ j }}{{ ', ' if not loop.last }}{% endfor %})
    qualify row_number() over (partition by r.city_code, r.funnel, r.grain, r.period_start, r.user_key
                               order by m.ts, m.event_id) = 1
),
{% endfor %}

reached as (
    {% for k in range(1, max_step + 1) %}
    select city_code, funnel, grain, period_start, entry_channel, step, seconds_from_previous from reached_{{ k }}
    {{ 'union all' if not loop.last }}
    {% endfor %}
),

by_channel as (
    select city_code, funnel, grain, period_start, entry_channel as channel, step, seconds_from_previous from reached
    union all
    select city_code, funnel, grain, period_start, 'all', step, seconds_from_previous from reached
),

counts as (
    select city_code, funnel, grain, period_start, channel, step,
           count(*) as users, median(seconds_from_previous) as median_seconds_from_previous
    from by_channel
    group by all
),

-- complete when no entry's window reaches past the city's latest series day
windows as (
    select e.city_code, e.funnel, e.grain, e.period_start, e.channel,
           bool_and(e.entry_day + e.window_days <= s.last_day) as window_complete
    from (
        select city_code, funnel, grain, period_start, entry_channel as channel, entry_day, window_days from reached_1
        union all
        select city_code, funnel, grain, period_start, 'all', entry_day, window_days from reached_1
    ) e
    join series s on s.city_code = e.city_code
    group by all
),

-- 'all' in every period, a channel where it had an entry; each with every step
grid as (
    select city_code, funnel, grain, period_start, 'all' as channel from periods
    union
    select city_code, funnel, grain, period_start, entry_channel from reached_1
),

rows as (
    select g.city_code, g.funnel, g.grain, g.period_start, g.channel, s.step, s.step_label,
           coalesce(c.users, 0) as users, c.median_seconds_from_previous,
           coalesce(w.window_complete, true) as window_complete, s.definition_fingerprint
    from grid g
    join steps s on s.funnel = g.funnel
    left join counts c
        on c.city_code = g.city_code and c.funnel = g.funnel and c.grain = g.grain
        and c.period_start = g.period_start and c.channel = g.channel and c.step = s.step
    left join windows w
        on w.city_code = g.city_code and w.funnel = g.funnel and w.grain = g.grain
        and w.period_start = g.period_start and w.channel = g.channel
)

select
    city_code,
    funnel,
    grain,
    period_start,
    channel,
    step,
    step_label,
    users,
    cast(users as double) / nullif(first_value(users) over entry_steps, 0) as conversion_from_start,
    case when step = 1 then case when users > 0 then 1.0 end
         else cast(users as double) / nullif(lag(users) over entry_steps, 0) end as conversion_from_previous,
    case when step > 1 then median_seconds_from_previous end as median_seconds_from_previous,
    window_complete,
    definition_fingerprint
from rows
window entry_steps as (partition by city_code, funnel, grain, period_start, channel order by step)
