{#- Event days touched by ingestion batches after since_batch() (macros/since_batch.sql), for one source.
    Rows: (city_code, event_day). -#}
{% macro affected_days(source_name) -%}
    {%- set names = [source_name] if source_name is string else source_name -%}
    select distinct city_code, event_day
    from {{ ref('stg_audit__delivery_changes') }}
    where source in ('{{ names | join("', '") }}')
{%- endmacro %}

{#- Spark prunes a table's partitions while it plans a query only for filters on its partition
    columns with literal values; joined with the change log (affected_days above), a read of the
    access lake listed and read every partition, so a new day cost more than the initial load
    (docs/performance.md, "Spark"). So on Spark the (city, day) pairs the new batches touched are
    fetched first (one small query) and written into the query as a filter on `alias`'s
    partition columns: `(a.city_code = 'c' and a.event_day in (date'…', …)) or …`, `false` when
    there are none. `changed_day`: the change log's column the pairs' days come from (event_day;
    dt for a lake partitioned by delivery). Elsewhere `true`: DuckDB's SQL is as it was. -#}
{% macro affected_partitions_filter(source_name, alias='', day_column='event_day', changed_day='event_day') -%}
    {%- if target.type != 'spark' or not execute -%}
        {{- return('true') -}}
    {%- endif -%}
    {%- set names = [source_name] if source_name is string else source_name -%}
    {%- set prefix = alias ~ '.' if alias else '' -%}
    {%- set pairs -%}
        select distinct city_code, cast({{ changed_day }} as string) as day
        from {{ source('audit', 'delivery_changes') }}
        where batch_id > {{ since_batch() }} and source in ('{{ names | join("', '") }}')
        order by city_code, day
    {%- endset -%}
    {%- set days = {} -%}
    {%- for row in run_query(pairs).rows -%}
        {%- do days.setdefault(row[0], []).append("date'" ~ row[1] ~ "'") -%}
    {%- endfor -%}
    {%- set terms = [] -%}
    {%- for city, city_days in days.items() -%}
        {%- do terms.append("(" ~ prefix ~ "city_code = '" ~ city ~ "' and " ~ prefix ~ day_column
                            ~ " in (" ~ (city_days | join(', ')) ~ "))") -%}
    {%- endfor -%}
    {{- return('(' ~ (terms | join(' or ')) ~ ')' if terms else 'false') -}}
{%- endmacro %}

{#- Per city, the days a day-keyed model must rebuild: from the earliest day the new batches
    touched (for the given sources), or the first day not built yet, or the series' first day
    when the series now starts earlier than what was built; to the series' last day. Every
    city's whole series on a full build. Rows: (city_code, start_day, last_day). -#}
{% macro rebuild_start_days(source_names, days_model, day_column='kpi_date') -%}
    select
        d.city_code,
        max(d.kpi_date) as last_day,
        {% if is_incremental() %}
        case
            when max(done.first_done) is null or min(d.kpi_date) < max(done.first_done) then min(d.kpi_date)
            else greatest(min(d.kpi_date),
                          least(coalesce(min(t.first_touched), max(done.last_done) + 1), max(done.last_done) + 1))
        end
        {% else %}
        min(d.kpi_date)
        {% endif %} as start_day
    from {{ days_model }} d
    {% if is_incremental() %}
    left join (select city_code, min({{ day_column }}) as first_done, max({{ day_column }}) as last_done
               from {{ this }} group by city_code) done
        on done.city_code = d.city_code
    left join (select city_code, min(event_day) as first_touched
               from ({{ affected_days(source_names) }}) group by city_code) t
        on t.city_code = d.city_code
    {% endif %}
    group by d.city_code
{%- endmacro %}

{#- pre_hook of day-partitioned incremental models: drop the affected days, the model
    inserts them again. Also right when a re-export removed every row of a day. (Spark's
    version, with drop_emptied_day_partitions() after the insert: engine_config.sql.) -#}
{% macro delete_affected_days(source_name, day_column='event_day') -%}
    {{ return(adapter.dispatch('delete_affected_days', 'citycloud')(source_name, day_column)) }}
{%- endmacro %}

{% macro default__delete_affected_days(source_name, day_column) -%}
    {% if is_incremental() %}
    delete from {{ this }} t
    where exists (
        select 1 from ({{ affected_days(source_name) }}) a
        where a.city_code = t.city_code and a.event_day = t.{{ day_column }}
    )
    {% endif %}
{%- endmacro %}

{#- In an incremental run, keep only the rows of affected days. -#}
{% macro only_affected_days(source_name, alias, day_column='event_day') -%}
    {% if is_incremental() %}
    semi join ({{ affected_days(source_name) }}) affected
        on affected.city_code = {{ alias }}.city_code and affected.event_day = {{ alias }}.{{ day_column }}
        {%- if target.type == 'spark' %} and {{ affected_partitions_filter(source_name, alias, day_column) }}{% endif %}
    {% endif %}
{%- endmacro %}

{#- Event-level increments, for a staging model that keeps the latest copy of each event.
    A day the new batches only added rows to keeps the winner of every event they did not
    deliver again, so only those events are deleted and ranked again; a day a re-export or a
    withdrawal removed rows from (a `removed` change) is rebuilt whole. Late events spread a
    delivery over the previous weeks, so rebuilding every touched day rewrote ~30 days of rows
    for one day's delivery (docs/performance.md, "Event-level increments"). Spark overwrites
    whole day partitions, so there every affected day is rebuilt whole. -#}

{#- Rows: (city_code, event_day) of the days rebuilt whole. -#}
{% macro days_rebuilt_whole(source_name) -%}
    select city_code, event_day
    from {{ ref('stg_audit__delivery_changes') }}
    where source = '{{ source_name }}'
    group by city_code, event_day
    {% if target.type != 'spark' %}having bool_or(change <> 'added'){% endif %}
{%- endmacro %}

{#- Rows: (city_code, event_day, <id_column>) of the events the new batches delivered on days
    they only added to, once per copy (callers only semi-join on it). A redelivered event keeps
    its id and event day, so its older copies are on the same day. DuckDB only: on Spark every
    affected day is rebuilt whole. -#}
{% macro events_added(source_name, id_column) -%}
    select n.city_code, n.event_day, n.{{ id_column }}
    from {{ source('landing', source_name) }} n
    semi join (
        select city_code, event_day
        from {{ ref('stg_audit__delivery_changes') }}
        where source = '{{ source_name }}'
        group by city_code, event_day
        having bool_and(change = 'added')
    ) added on added.city_code = n.city_code and added.event_day = n.event_day
    where n.batch_id > {{ since_batch() }}
{%- endmacro %}

{#- In an incremental run, the rows of `alias` (a source read with the day and id columns of
    the model) that the build must rank again: every row of a day rebuilt whole, and every
    copy of an event added on the other days. Use as the whole FROM … of the read. -#}
{% macro changed_events_of(source_name, id_column, alias, columns) -%}
    {% if is_incremental() %}
    select {{ columns }}
    from {{ source('landing', source_name) }} {{ alias }}
    semi join ({{ days_rebuilt_whole(source_name) }}) whole
        on whole.city_code = {{ alias }}.city_code and whole.event_day = {{ alias }}.event_day
    {% if target.type == 'spark' %}
        and {{ affected_partitions_filter(source_name, alias) }}
    {% else %}
    union all
    select {{ columns }}
    from {{ source('landing', source_name) }} {{ alias }}
    semi join ({{ events_added(source_name, id_column) }}) added
        on added.city_code = {{ alias }}.city_code and added.event_day = {{ alias }}.event_day
       and added.{{ id_column }} = {{ alias }}.{{ id_column }}
    {% endif %}
    {% else %}
    select {{ columns }}
    from {{ source('landing', source_name) }} {{ alias }}
    {% endif %}
{%- endmacro %}

{#- pre_hook of such a model: delete what changed_events_of() will insert again. On Spark the
    affected day partitions are overwritten (spark__delete_affected_days). -#}
{% macro delete_changed_events(source_name, id_column) -%}
    {% if target.type == 'spark' %}
    {{ delete_affected_days(source_name) }}
    {% elif is_incremental() %}
    delete from {{ this }} t
    where exists (
        select 1 from ({{ days_rebuilt_whole(source_name) }}) whole
        where whole.city_code = t.city_code and whole.event_day = t.event_day
    );
    delete from {{ this }} t
    where exists (
        select 1 from ({{ events_added(source_name, id_column) }}) added
        where added.city_code = t.city_code and added.event_day = t.event_day
          and added.{{ id_column }} = t.{{ id_column }}
    )
    {% endif %}
{%- endmacro %}
