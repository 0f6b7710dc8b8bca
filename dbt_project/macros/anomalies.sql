{#- The anomaly method's parameters (docs/alerts.md explains each and why), in one place. -#}
{% macro anomaly_params() -%}
    {#- weeks: same-weekday history, the previous 8 weeks; makeup_days: a make-up working day is judged
    against the ordinary workdays of the previous 28 days; min_days: no judgement with fewer comparable
    days; k: band half-width in robust standard deviations (1.4826 x MAD); count_rel: counts' band is at
    least +-20 % of the expected value (flat history); rate_abs: rates' band at least +-5 points;
    min_expected: counts expected under 20, and rates over fewer than 20 events, are not judged;
    busy_share: a service is watched with >= 1 % of its city's accesses over the previous 28 days. -#}
    {{ return({
        'weeks': 8,
        'makeup_days': 28,
        'min_days': 4,
        'k': 4,
        'count_rel': 0.2,
        'rate_abs': 0.05,
        'min_expected': 20,
        'busy_share': 0.01,
    }) }}
{%- endmacro %}

{#- Per city, the first day marts.kpi_anomalies rebuilds: the earliest event day the new batches
    touched (any source: a judged day's baseline only looks back, so every later day is redone).
    Rows: (city_code, first_day). -#}
{% macro anomaly_rebuild_from() -%}
    select city_code, min(event_day) as first_day
    from {{ ref('stg_audit__delivery_changes') }}
    group by city_code
{%- endmacro %}

{% macro delete_anomalies_from_rebuild() -%}
    {% if is_incremental() %}
    delete from {{ this }} t
    where exists (select 1 from ({{ anomaly_rebuild_from() }}) r
                  where r.city_code = t.city_code and t.kpi_date >= r.first_day)
    {% endif %}
{%- endmacro %}

{#- One judging pass over `typed` (city_code, series_key, day, kind, dow, value, denominator,
    is_rate): each judgeable day against its comparable earlier days, leaving out the days in
    `excluded` (same columns city_code, series_key, day) when given. Rows: every judged day with
    its band and whether it fell out. -#}
{% macro anomaly_pass(typed, excluded=none) -%}
{%- set p = anomaly_params() -%}
(
    with pairs as (
        select j.city_code, j.series_key, j.day, b.value as base_value, b.denominator as base_denominator
        from {{ typed }} j
        join {{ typed }} b
            on b.city_code = j.city_code and b.series_key = j.series_key
           and b.day < j.day and b.day >= j.day - {{ p.weeks * 7 }}
           and b.kind = 'ordinary' and b.value is not null
           and ((j.kind = 'ordinary' and b.dow = j.dow)
                or (j.kind = 'workday' and b.dow <= 5 and b.day >= j.day - {{ p.makeup_days }}))
        {% if excluded %}
        where not exists (select 1 from {{ excluded }} x
                          where x.city_code = b.city_code and x.series_key = b.series_key and x.day = b.day)
        {% endif %}
    ),
    centre as (
        select city_code, series_key, day, count(*) as n_days, median(base_value) as expected,
               median(base_denominator) as expected_denominator
        from pairs group by all
    ),
    spread as (
        select c.city_code, c.series_key, c.day, c.n_days, c.expected, c.expected_denominator,
               median(abs(p.base_value - c.expected)) as mad
        from centre c
        join pairs p on p.city_code = c.city_code and p.series_key = c.series_key and p.day = c.day
        where c.n_days >= {{ p.min_days }}
        group by all
    ),
    banded as (
        select j.city_code, j.series_key, j.metric, j.service_id, j.is_rate, j.day, j.value, s.expected,
               greatest({{ p.k }} * 1.4826 * s.mad,
                        case when j.is_rate
                             then greatest({{ p.rate_abs }}, {{ p.k }} * sqrt(s.expected * (1 - s.expected) / j.denominator))
                             else greatest({{ p.count_rel }} * s.expected, {{ p.k }} * sqrt(s.expected)) end) as half_width
        from {{ typed }} j
        join spread s on s.city_code = j.city_code and s.series_key = j.series_key and s.day = j.day
        where j.kind <> 'holiday' and j.value is not null
          and case when j.is_rate then j.denominator >= {{ p.min_expected }} and s.expected_denominator >= {{ p.min_expected }}
                   else s.expected >= {{ p.min_expected }} end
    )
    select *, abs(value - expected) / half_width as score, abs(value - expected) > half_width as is_out
    from banded
)
{%- endmacro %}
