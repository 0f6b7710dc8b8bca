{#- The dbt sources on Spark: external parquet tables over the lake that citycloud.spark.lake
    exports from the DuckDB warehouse (ingestion's store). The pipeline passes their columns
    and locations in var('lake'), taken from the DuckDB tables themselves, so the raw schema has
    one home (ingestion/schema.py). Spark finds their partitions by listing the
    folders (profiles.yml: spark.sql.hive.manageFilesourcePartitions=false): nothing to repair
    in the metastore; REFRESH forgets the listing a session kept from an earlier build. A table
    marked `redeclare` (its lake was written again in another layout: lake.py) is dropped and
    declared again: an external table, so its files stay. -#}
{% macro register_lake_sources() -%}
    {{ return(adapter.dispatch('register_lake_sources', 'citycloud')()) }}
{%- endmacro %}

{% macro default__register_lake_sources() %}{% endmacro %}

{% macro spark__register_lake_sources() %}
    {% set lake = var('lake', none) %}
    {% if lake is none %}
        {{ exceptions.raise_compiler_error("var 'lake' is not set: build on Spark through `citycloud run --engine spark`") }}
    {% endif %}
    {% for name, table in lake.items() %}
        {% do run_query("create database if not exists " ~ name.split('.')[0]) %}
        {% if flags.FULL_REFRESH or table.get('redeclare') %}
            {% do run_query("drop table if exists " ~ name) %}
        {% endif %}
        {% set ddl %}
            create table if not exists {{ name }} ({{ table.columns }}) using parquet
            {% if table.partitioned_by %}partitioned by ({{ table.partitioned_by | join(', ') }}){% endif %}
            location '{{ table.location }}'
        {% endset %}
        {% do run_query(ddl) %}
        {% do run_query("refresh table " ~ name) %}
    {% endfor %}
{% endmacro %}
