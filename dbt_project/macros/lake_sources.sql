{#- The dbt sources on Spark: external parquet tables over the lake that citycloud.spark.lake
    exports from the DuckDB warehouse (ingestion's store). The pipeline passes their columns
    and locations in var('lake'), taken from the DuckDB tables themselves, so the raw schema has
    one home (ingestion/schema.py). Partitions are synced with the folders on every run. -#}
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
        {% if flags.FULL_REFRESH %}
            {% do run_query("drop table if exists " ~ name) %}
        {% endif %}
        {% set ddl %}
            create table if not exists {{ name }} ({{ table.columns }}) using parquet
            {% if table.partitioned_by %}partitioned by ({{ table.partitioned_by | join(', ') }}){% endif %}
            location '{{ table.location }}'
        {% endset %}
        {% do run_query(ddl) %}
        {% if table.partitioned_by %}
            {% do run_query("msck repair table " ~ name ~ " sync partitions") %}
        {% else %}
            {% do run_query("refresh table " ~ name) %}
        {% endif %}
    {% endfor %}
{% endmacro %}
