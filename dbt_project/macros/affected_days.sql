{#- Event days touched by ingestion batches after var('since_batch'), for one source.
    Rows: (city_code, event_day). -#}
{% macro affected_days(source_name) -%}
    select distinct city_code, event_day
    from {{ ref('stg_audit__delivery_changes') }}
    where source = '{{ source_name }}'
{%- endmacro %}

{#- pre_hook of day-partitioned incremental models: drop the affected days, the model
    inserts them again. Also right when a re-export removed every row of a day. -#}
{% macro delete_affected_days(source_name, day_column='event_day') -%}
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
