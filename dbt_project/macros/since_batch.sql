{#- The highest ingestion batch the previous successful build covered; -1 = none (everything
    is new). The pipeline sets CITYCLOUD_SINCE_BATCH for each build (citycloud.dbt_runner).
    Read when a node is compiled, never while the project is parsed: a parse-time value would
    be frozen into dbt's saved manifest, and a value that changes every build (as --vars did)
    makes dbt re-parse the whole project each time (docs/performance.md, "Issue #15"). Data
    tests filter on it with `where: "batch_id > __since_batch__"` (macros/get_where_subquery.sql). -#}
{% macro since_batch() -%}
    {%- if not execute -%}
        {{- return(-1) -}}
    {%- endif -%}
    {%- set value = env_var('CITYCLOUD_SINCE_BATCH', '-1') | trim -%}
    {%- if not (value.lstrip('-') | length and value.lstrip('-').isdigit()) -%}
        {{- exceptions.raise_compiler_error("CITYCLOUD_SINCE_BATCH must be a batch number (-1 for all batches), got '" ~ value ~ "'") -}}
    {%- endif -%}
    {{- return(value | int) -}}
{%- endmacro %}
