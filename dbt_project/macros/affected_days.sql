{#- Event days touched by ingestion batches after since_batch() (macros/since_batch.sql), for one source.
    Rows: (city_code, event_day). -#}
{% macro affected_days(source_name) -%}
    {%- set names = [source_name] if source_name is string else source_name -%}
    select distinct city_code, event_day
    from {{ ref('stg_audit__delivery_changes') }}
    where source in ('{{ names | join("', '") }}')
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
    {% endif %}
{%- endmacro %}
