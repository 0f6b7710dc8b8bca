{{ config(materialized=incremental_unless_spark(), pre_hook="{{ delete_anomalies_from_rebuild() }}") }}
-- depends_on: {{ ref('stg_audit__delivery_changes') }}

-- KPI anomalies (alerts.md): per city and day, and per busy connected service, the figures that
-- fell out of the band their comparable earlier days give (docs/alerts.md: same weekday of the
-- previous 8 weeks, make-up working days against workdays, holidays not judged; median/MAD with
-- floors for flat histories and small numbers). Two passes: days the first pass flags are left
-- out of the second pass's baselines, so one broken day does not drag later bands.
-- Incremental: every day from the earliest day the new batches touched is judged again (its
-- baselines only look back); the first pass runs from 8 weeks earlier so it matches a full build.
{% set p = anomaly_params() %}
with rebuild as (
    {% if is_incremental() %}
    {{ anomaly_rebuild_from() }}
    {% else %}
    select city_code, min(kpi_date) as first_day from {{ ref('kpi_daily') }} group by city_code
    {% endif %}
),

kpi as (
    select k.*
    from {{ ref('kpi_daily') }} k
    join rebuild r on r.city_code = k.city_code and k.kpi_date >= r.first_day - {{ 2 * p.weeks * 7 }}
),

city_series as (
    {% for metric, denominator in [('dau', none), ('total_accesses', none), ('new_registrations', none),
                                   ('ratings', none), ('success_rate', 'total_accesses'),
                                   ('satisfaction_rate', 'ratings')] %}
    select city_code, kpi_date as day, '{{ metric }}' as metric, cast(null as string) as service_id,
           cast({{ metric }} as double) as value,
           cast({{ denominator or 'null' }} as double) as denominator, {{ 'true' if denominator else 'false' }} as is_rate
    from kpi
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

-- Per service: total_accesses while connected, for services with >= 1 % of the city's accesses
-- over the previous 28 days (a retired service simply stops being watched).
service_shares as (
    select s.city_code, s.kpi_date, s.service_id, s.is_connected, s.total_accesses,
           sum(s.total_accesses) over last_28 as service_28d,
           sum(k.total_accesses) over last_28 as city_28d
    from {{ ref('service_daily') }} s
    join kpi k on k.city_code = s.city_code and k.kpi_date = s.kpi_date
    window last_28 as (partition by s.city_code, s.service_id order by s.kpi_date
                       range between interval 28 days preceding and interval 1 day preceding)
),

service_series as (
    select city_code, kpi_date as day, 'total_accesses' as metric, service_id,
           cast(total_accesses as double) as value, cast(null as double) as denominator, false as is_rate
    from service_shares
    where is_connected and service_28d >= {{ p.busy_share }} * city_28d
),

typed as (
    select s.*, s.metric || '|' || coalesce(s.service_id, '') as series_key,
           coalesce(h.kind, 'ordinary') as kind, {{ iso_weekday('s.day') }} as dow
    from (select * from city_series union all select * from service_series) s
    left join {{ ref('holiday_calendar') }} h on h.day = s.day
),

first_pass as (
    select city_code, series_key, day from {{ anomaly_pass('typed') }} where is_out
),

judged as (
    select * from {{ anomaly_pass('typed', 'first_pass') }} where is_out
)

select
    j.city_code,
    j.day as kpi_date,
    j.metric,
    j.service_id,
    j.value,
    j.expected,
    greatest(j.expected - j.half_width, 0) as lower_bound,
    case when j.is_rate then least(j.expected + j.half_width, 1) else j.expected + j.half_width end as upper_bound,
    case when j.value > j.expected then 'up' else 'down' end as direction,
    j.score
from judged j
join rebuild r on r.city_code = j.city_code and j.day >= r.first_day
