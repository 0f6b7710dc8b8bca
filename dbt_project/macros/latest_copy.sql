{#- The staging dedup rule for events delivered more than once (landing.md): the copy from the
    latest delivery (dt) wins; within a delivery the first file, then the first line. Every event
    source ranks its copies with this one window; rank 1 is the copy kept. -#}
{% macro latest_copy_rank(alias, key='event_id', delivered='dt') -%}
    row_number() over (partition by {{ alias }}.city_code, {{ alias }}.{{ key }}
                       order by {{ alias }}.{{ delivered }} desc, {{ alias }}.file, {{ alias }}.line)
{%- endmacro %}
