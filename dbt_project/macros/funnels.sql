{#- The funnels of the run's funnels.yml, validated by citycloud/funnels.py and passed as JSON
    in CITYCLOUD_FUNNEL_DEFINITIONS (one row per funnel step). Read when a node compiles, never
    while the project is parsed, as since_batch() is: a changed file keeps partial parsing. -#}
{% macro funnel_step_rows() -%}
    {%- if not execute -%}
        {{- return([]) -}}
    {%- endif -%}
    {{- return(fromjson(env_var('CITYCLOUD_FUNNEL_DEFINITIONS', '[]'))) -}}
{%- endmacro %}

{% macro sql_text(value) -%}
    {%- if value is none -%}null{%- else -%}'{{ value | string | replace("'", "''") }}'{%- endif -%}
{%- endmacro %}

{#- Per city, the first day whose events or catalog a new batch touched, or the first day newly
    delivered (a new day completes periods and windows). Funnel rows of entries from this day
    minus the funnel's window on are rebuilt. Rows: (city_code, first_day). -#}
{% macro funnel_rebuild_from() -%}
    select city_code, min(day) as first_day
    from (
        select city_code, event_day as day from ({{ affected_days(['service_access', 'registrations', 'service_catalog']) }})
        union all
        select city_code, dt from {{ ref('stg_audit__deliveries') }} where batch_id > {{ since_batch() }}
    )
    group by city_code
{%- endmacro %}

{#- The first period (per grain) of a funnel's rows to rebuild: the one holding the first
    entry day whose window can reach first_day. -#}
{% macro funnel_first_period(grain, first_day, window_days) -%}
    cast(date_trunc({{ grain }}, cast({{ first_day }} - {{ window_days }} as date)) as date)
{%- endmacro %}

{#- pre_hook of funnel_conversion: drop the rows of funnels removed or redefined (the model
    rebuilds a funnel with no rows of its current definition whole) and, for the others, every
    period from the first one a new batch can change. -#}
{% macro delete_funnels_from_rebuild() -%}
    {% if is_incremental() %}
    delete from {{ this }} t
    where not exists (select 1 from {{ ref('int_funnel_steps') }} s
                      where s.funnel = t.funnel and s.definition_fingerprint = t.definition_fingerprint)
       or exists (select 1 from ({{ funnel_rebuild_from() }}) r
                  join (select distinct funnel, window_days from {{ ref('int_funnel_steps') }}) f on true
                  where r.city_code = t.city_code and f.funnel = t.funnel
                    and t.period_start >= {{ funnel_first_period('t.grain', 'r.first_day', 'f.window_days') }})
    {% endif %}
{%- endmacro %}

{#- An event `e` (columns of funnel_conversion's events) matches a funnel step `s`. -#}
{% macro funnel_step_matches(e, s) -%}
    {{ e }}.event = {{ s }}.event
    and ({{ s }}.min_auth_level is null or {{ e }}.auth_level >= {{ s }}.min_auth_level)
    and ({{ s }}.service_id is null or {{ e }}.service_id = {{ s }}.service_id)
    and ({{ s }}.category is null or {{ e }}.category = {{ s }}.category)
    and ({{ s }}.department is null or {{ e }}.department = {{ s }}.department)
    and ({{ s }}.outcome is null or {{ e }}.outcome = {{ s }}.outcome)
    and ({{ s }}.channel is null or {{ channel_or_unknown(e ~ '.channel') }} = {{ s }}.channel)
{%- endmacro %}

{#- The events of `events` (funnel_conversion's CTE), only those of `read_days` when given, with
    the category and department of their service in the day's catalog snapshot (day_snapshots). -#}
{% macro funnel_events_with_catalog(events, read_days=none) -%}
    select e.*, c.category, c.department
    from {{ events }} e
    {% if read_days %}
    semi join {{ read_days }} r on r.city_code = e.city_code and e.event_day between r.first_day and r.last_day
    {% endif %}
    left join day_snapshots d on d.city_code = e.city_code and d.event_day = e.event_day
    left join {{ ref('stg_landing__service_catalog') }} c
        on c.city_code = e.city_code and c.snapshot_dt = d.snapshot_dt and c.service_id = e.service_id
{%- endmacro %}
