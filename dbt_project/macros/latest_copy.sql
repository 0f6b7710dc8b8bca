{#- The staging dedup rule for events delivered more than once (landing.md): the copy from the
    latest delivery (dt) wins; within a delivery the first file, then the first line. Every event
    source ranks its copies with this one window; rank 1 is the copy kept. -#}
{% macro latest_copy_rank(alias, key='event_id', delivered='dt') -%}
    row_number() over (partition by {{ alias }}.city_code, {{ alias }}.{{ key }}
                       order by {{ alias }}.{{ delivered }} desc, {{ alias }}.file, {{ alias }}.line)
{%- endmacro %}

{#- The staging rule for sources delivered again at each change of state (review_tickets,
    reviews.md): the version with the latest `version_ts` wins; ties: the later delivery (dt),
    then the later file, then the later line. Rank 1 is the version kept. -#}
{% macro latest_version_rank(alias, key, version_ts, delivered='dt') -%}
    row_number() over (partition by {{ alias }}.city_code, {{ alias }}.{{ key }}
                       order by {{ alias }}.{{ version_ts }} desc, {{ alias }}.{{ delivered }} desc,
                                {{ alias }}.file desc, {{ alias }}.line desc)
{%- endmacro %}
