{#- Per-engine model configuration (docs/spark.md). One set of model files; what the engines
    store differently is chosen here.

    Day-keyed incremental models (staging, per-day aggregates): on DuckDB appended after a
    pre_hook deleted the affected days; on Spark (parquet tables, no DELETE) partitioned by
    city and day, the affected partitions dropped by the same pre_hook and written again with
    insert_overwrite (spark.sql.sources.partitionOverwriteMode=dynamic), so a new day writes
    only its own partitions' files. -#}
{% macro day_partitions(day_column='event_day') -%}
    {{ return(['city_code', day_column] if target.type == 'spark' else none) }}
{%- endmacro %}

{#- Models whose incremental form needs DELETE or delete+insert by key (period-keyed marts and
    their building blocks): incremental on DuckDB, rebuilt in full on Spark. They read the
    per-day aggregates, not the events, and a full build gives the same rows as an
    incremental one (tests/marts/test_incremental.py). -#}
{% macro incremental_unless_spark() -%}
    {{ return('table' if target.type == 'spark' else 'incremental') }}
{%- endmacro %}

{#- Views read by publishing: on Spark a table, so the export to DuckDB finds files. -#}
{% macro view_unless_spark() -%}
    {{ return('table' if target.type == 'spark' else 'view') }}
{%- endmacro %}
