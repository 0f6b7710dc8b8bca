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

{#- Spark's side of delete_affected_days() (affected_days.sql), with drop_emptied_day_partitions()
    as the same models' post-hook (dbt_project.yml).

    Partitions are not tracked in the metastore (spark.sql.hive.manageFilesourcePartitions=false
    in profiles.yml: Spark lists the partition folders instead, where embedded Derby cost seconds
    per partition written), so ALTER TABLE DROP PARTITION is refused. insert_overwrite in dynamic
    mode replaces every affected partition the model writes rows for; only an affected partition
    that is now empty (a re-export removed all of a day's rows) would keep its old files. So
    before the insert this notes the files of the affected partitions that exist, in a temporary
    view of literal rows (a cached query would be recomputed after the insert), and after it
    those partitions still holding a noted file are emptied. Usually none: two small queries per
    model, not one write per partition. -#}
{% macro spark__delete_affected_days(source_name, day_column) -%}
    {% if is_incremental() %}
    {% set existing %}
        select distinct t.city_code, cast(t.{{ day_column }} as string) as day, t._metadata.file_path as file_path
        from {{ this }} t
        semi join ({{ affected_days(source_name) }}) a
            on a.city_code = t.city_code and a.event_day = t.{{ day_column }}
            and {{ affected_partitions_filter(source_name, 't', day_column) }}
    {% endset %}
    {% set rows = run_query(existing).rows %}
    {% set values = [] %}
    {% for row in rows %}
        {% do values.append("('" ~ row[0] ~ "', '" ~ row[1] ~ "', '" ~ (row[2] | replace("'", "\\'")) ~ "')") %}
    {% endfor %}
    {% do run_query("create or replace temporary view " ~ files_before_insert_view(this) ~ " as " ~
        ("select * from values " ~ (values | join(', ')) ~ " as v(city_code, day, file_path)" if values else
         "select cast(null as string) as city_code, cast(null as string) as day, cast(null as string) as file_path where false")) %}
    {% endif %}
{%- endmacro %}

{% macro drop_emptied_day_partitions() -%}
    {% if target.type == 'spark' and is_incremental() and config.get('partition_by') %}
    {% set before = files_before_insert_view(this) %}
    {% set day_column = config.get('partition_by')[1] %}
    {#- the noted partitions as literals, so that only their files are listed (affected_partitions_filter) -#}
    {% set noted = [] %}
    {% for row in run_query("select distinct city_code, day from " ~ before).rows %}
        {% do noted.append("(t.city_code = '" ~ row[0] ~ "' and t." ~ day_column ~ " = date'" ~ row[1] ~ "')") %}
    {% endfor %}
    {% set kept %}
        select distinct b.city_code, b.day
        from {{ before }} b
        join (select t._metadata.file_path as file_path from {{ this }} t
              where {{ noted | join(' or ') }}) now
            on now.file_path = b.file_path
    {% endset %}
    {% set stale = run_query(kept).rows if noted else [] %}
    {% if stale %}
        {% set data_columns = [] %}
        {% for column in adapter.get_columns_in_relation(this) if column.name not in config.get('partition_by') %}
            {% do data_columns.append("cast(null as " ~ column.dtype ~ ") as `" ~ column.name ~ "`") %}
        {% endfor %}
        {% for row in stale %}
            {#- all partition columns static: Spark replaces this one partition by nothing -#}
            {% do run_query("insert overwrite table " ~ this ~ " partition (city_code = '" ~ row[0] ~ "', "
                            ~ day_column ~ " = '" ~ row[1] ~ "') select " ~ (data_columns | join(', ')) ~ " where false") %}
        {% endfor %}
    {% endif %}
    {% do run_query("drop view if exists " ~ before) %}
    {% endif %}
{%- endmacro %}

{% macro files_before_insert_view(relation) -%}
    {{ return(relation.schema ~ "__" ~ relation.identifier ~ "__files_before_insert") }}
{%- endmacro %}
