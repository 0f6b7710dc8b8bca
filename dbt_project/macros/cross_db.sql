{#- The SQL that differs between DuckDB and Spark, one dispatch macro each (docs/spark.md).
    The DuckDB version is always the SQL the models had before there was a second engine, so
    the DuckDB build is unchanged; the Spark version gives the same values. -#}

{#- Whole days from a to b (both DATE): an integer on both (DuckDB `b - a`, Spark an interval). -#}
{% macro days_between(a, b) -%}
    {{ return(adapter.dispatch('days_between', 'citycloud')(a, b)) }}
{%- endmacro %}
{% macro default__days_between(a, b) %}({{ b }} - {{ a }}){% endmacro %}
{% macro spark__days_between(a, b) %}datediff({{ b }}, {{ a }}){% endmacro %}

{#- A FROM-clause item joining every row to the periods from `first` to `last` (inclusive) in
    steps of `step` ('1 day', '7 day', '1 month'), as `alias.column` (cast it to date). -#}
{% macro series_lateral(first, last, step, alias, column) -%}
    {{ return(adapter.dispatch('series_lateral', 'citycloud')(first, last, step, alias, column)) }}
{%- endmacro %}
{% macro default__series_lateral(first, last, step, alias, column) -%}
    , generate_series(cast({{ first }} as timestamp), cast({{ last }} as timestamp), interval {{ step }}) as {{ alias }}({{ column }})
{%- endmacro %}
{% macro spark__series_lateral(first, last, step, alias, column) -%}
    lateral view explode(sequence(cast({{ first }} as date), cast({{ last }} as date), interval {{ step }})) {{ alias }} as {{ column }}
{%- endmacro %}

{#- The last non-null value of `expr` over the window that follows (write ` over w` after it). -#}
{% macro last_non_null(expr) -%}
    {{ return(adapter.dispatch('last_non_null', 'citycloud')(expr)) }}
{%- endmacro %}
{% macro default__last_non_null(expr) %}last_value({{ expr }} ignore nulls){% endmacro %}
{% macro spark__last_non_null(expr) %}last_value({{ expr }}, true){% endmacro %}

{#- avg(expr) over the rows where `condition` holds, summed in `order_by` order where the
    engine allows it: a float sum in whatever order threads meet differs in the last bits
    between two builds. Spark has no ordered aggregates; its result may differ in those bits. -#}
{% macro ordered_avg(expr, order_by, condition) -%}
    {{ return(adapter.dispatch('ordered_avg', 'citycloud')(expr, order_by, condition)) }}
{%- endmacro %}
{% macro default__ordered_avg(expr, order_by, condition) -%}
    avg({{ expr }} order by {{ order_by }}) filter (where {{ condition }})
{%- endmacro %}
{% macro spark__ordered_avg(expr, order_by, condition) -%}
    avg({{ expr }}) filter (where {{ condition }})
{%- endmacro %}

{#- Does the whole of `expr` match the regular expression `pattern`? -#}
{% macro full_match(expr, pattern) -%}
    {{ return(adapter.dispatch('full_match', 'citycloud')(expr, pattern)) }}
{%- endmacro %}
{% macro default__full_match(expr, pattern) %}regexp_full_match({{ expr }}, '{{ pattern }}'){% endmacro %}
{% macro spark__full_match(expr, pattern) %}({{ expr }} rlike '^(?:{{ pattern }})$'){% endmacro %}

{#- `select <left>.*, <right columns>` with each left row joined to the right row of the same
    keys whose `right_time` is the latest <= `left_time` (no match: nulls). The left rows must
    be unique by `left_key_columns` + `left_time`. DuckDB: an ASOF join; elsewhere a range
    join keeping the latest match per left row. -#}
{% macro latest_as_of_join(left, left_alias, right, right_alias, keys, left_time, right_time, right_columns, left_key_columns) -%}
    {{ return(adapter.dispatch('latest_as_of_join', 'citycloud')(left, left_alias, right, right_alias, keys, left_time, right_time, right_columns, left_key_columns)) }}
{%- endmacro %}
{% macro default__latest_as_of_join(left, left_alias, right, right_alias, keys, left_time, right_time, right_columns, left_key_columns) -%}
    select {{ left_alias }}.*, {% for c in right_columns %}{{ right_alias }}.{{ c }}{{ ', ' if not loop.last }}{% endfor %}
    from {{ left }} {{ left_alias }}
    asof left join {{ right }} {{ right_alias }}
        on {% for k in keys %}{{ right_alias }}.{{ k }} = {{ left_alias }}.{{ k }} and {% endfor %}{{ right_alias }}.{{ right_time }} <= {{ left_alias }}.{{ left_time }}
{%- endmacro %}
{% macro spark__latest_as_of_join(left, left_alias, right, right_alias, keys, left_time, right_time, right_columns, left_key_columns) -%}
    select {{ left_alias }}.*, {% for c in right_columns %}{{ right_alias }}.{{ c }}{{ ', ' if not loop.last }}{% endfor %}
    from {{ left }} {{ left_alias }}
    left join {{ right }} {{ right_alias }}
        on {% for k in keys %}{{ right_alias }}.{{ k }} = {{ left_alias }}.{{ k }} and {% endfor %}{{ right_alias }}.{{ right_time }} <= {{ left_alias }}.{{ left_time }}
    qualify row_number() over (
        partition by {% for k in left_key_columns %}{{ left_alias }}.{{ k }}, {% endfor %}{{ left_alias }}.{{ left_time }}
        order by {{ right_alias }}.{{ right_time }} desc nulls last) = 1
{%- endmacro %}

{#- A timestamp plus n whole days (n x 24 h). -#}
{% macro plus_days(ts, n) -%}
    {{ return(adapter.dispatch('plus_days', 'citycloud')(ts, n)) }}
{%- endmacro %}
{% macro default__plus_days(ts, n) %}({{ ts }} + to_days({{ n }})){% endmacro %}
{% macro spark__plus_days(ts, n) %}({{ ts }} + make_interval(0, 0, 0, {{ n }})){% endmacro %}

{#- Seconds since the epoch of a timestamp, fractions kept (a DOUBLE). -#}
{% macro epoch_seconds(ts) -%}
    {{ return(adapter.dispatch('epoch_seconds', 'citycloud')(ts)) }}
{%- endmacro %}
{% macro default__epoch_seconds(ts) %}epoch({{ ts }}){% endmacro %}
{% macro spark__epoch_seconds(ts) %}(cast(unix_micros({{ ts }}) as double) / 1000000){% endmacro %}

{#- ISO day of the week: Monday 1 … Sunday 7. -#}
{% macro iso_weekday(expr) -%}
    {{ return(adapter.dispatch('iso_weekday', 'citycloud')(expr)) }}
{%- endmacro %}
{% macro default__iso_weekday(expr) %}isodow({{ expr }}){% endmacro %}
{% macro spark__iso_weekday(expr) %}(weekday({{ expr }}) + 1){% endmacro %}
