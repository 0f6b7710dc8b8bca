{#- dbt's own get_where_subquery (the `where` config of data tests), plus one placeholder:
    `__since_batch__` becomes since_batch() when the test is compiled. dbt renders a test's
    `where` while it parses the project, so a value written there directly would be frozen in
    the saved manifest and, changing every build, would make dbt re-parse every node that reads
    the tested source (dbt documents this override for run-time values in `where`). On Spark a
    lake source's test then reads only the partitions the new batches touched. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- set where = where | replace('__since_batch__', since_batch() | string) -%}
        {%- set lake_table = (var('lake', none) or {}).get(relation.schema ~ '.' ~ relation.identifier) -%}
        {%- if '__since_batch__' in config.get('where') and since_batch() >= 0 and lake_table and lake_table.partitioned_by -%}
            {#- Spark: the new batches' rows lie in the partitions they touched; read only those -#}
            {%- set day = lake_table.partitioned_by[1] -%}
            {%- set where = where ~ ' and ' ~ affected_partitions_filter(relation.identifier, '', day,
                                                                         'dt' if day == 'dt' else 'event_day') -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
