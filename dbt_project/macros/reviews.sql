{#- N of reviews.md's deadline: a bad review is due at the end of the N-th working day after its
    rating day. Its one home is Settings.rectify_working_days (CITYCLOUD_RECTIFY_WORKING_DAYS);
    citycloud.dbt_runner passes it in the environment, read when a node compiles (as
    since_batch()), so dbt's partial parsing survives a change. Unit tests override this macro. -#}
{% macro rectify_working_days() -%}
    {%- if not execute -%}
        {{- return(15) -}}
    {%- endif -%}
    {%- set value = env_var('CITYCLOUD_RECTIFY_WORKING_DAYS', '15') | trim -%}
    {%- if not (value.isdigit() and value | int >= 1) -%}
        {{- exceptions.raise_compiler_error("CITYCLOUD_RECTIFY_WORKING_DAYS must be a whole number of working days >= 1, got '" ~ value ~ "'") -}}
    {%- endif -%}
    {{- return(value | int) -}}
{%- endmacro %}

{#- A bad review: a counted rating with score <= 2 (reviews.md, "Grades"). -#}
{% macro is_bad_review(score) -%}({{ score }} <= 2){%- endmacro %}
