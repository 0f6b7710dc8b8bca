{#- dbt's own get_where_subquery (the `where` config of data tests), plus one placeholder:
    `__since_batch__` becomes since_batch() when the test is compiled. dbt renders a test's
    `where` while it parses the project, so a value written there directly would be frozen in
    the saved manifest and, changing every build, would make dbt re-parse every node that reads
    the tested source (dbt documents this override for run-time values in `where`). -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- set where = where | replace('__since_batch__', since_batch() | string) -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
