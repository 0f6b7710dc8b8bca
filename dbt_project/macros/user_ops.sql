{#- The channel a user-operations figure is attributed to: as delivered, empty or null
    counted as 'unknown' (user_ops.md). -#}
{% macro channel_or_unknown(column) -%}
    coalesce(nullif({{ column }}, ''), 'unknown')
{%- endmacro %}

{#- The period just before a week or month period_start (same grain). -#}
{% macro previous_period(grain, period_start) -%}
    case {{ grain }} when 'week' then cast({{ period_start }} - 7 as date)
                     else cast({{ period_start }} - interval 1 month as date) end
{%- endmacro %}

{#- Per city and grain, the first week / month a user-period model must rebuild: the period of
    the earliest access day new batches touched (added or removed rows). Later periods are
    rebuilt too, because a user's previous active period may have changed there.
    Rows: (city_code, grain, start_period). -#}
{% macro user_period_rebuild_starts() -%}
    select city_code, grain, min(period_start) as start_period
    from (
        select city_code, 'week' as grain, cast(date_trunc('week', event_day) as date) as period_start
        from ({{ affected_days('service_access') }})
        union all
        select city_code, 'month', cast(date_trunc('month', event_day) as date)
        from ({{ affected_days('service_access') }})
    )
    group by all
{%- endmacro %}

{#- pre_hook of int_user_activity_aggregated_to_periods: drop every period from the rebuild
    start on (also right when a re-export removed a period's last access). -#}
{% macro delete_user_periods_from_rebuild_start() -%}
    {% if is_incremental() %}
    delete from {{ this }} t
    where exists (
        select 1 from ({{ user_period_rebuild_starts() }}) s
        where s.city_code = t.city_code and s.grain = t.grain and t.period_start >= s.start_period
    )
    {% endif %}
{%- endmacro %}

{#- Per city, the first week and month whose user-operations rows a build must redo: the
    periods of the earliest access day new batches touched, and of the earliest day newly
    delivered (any source: a new day can complete a week or a month, an earlier delivery
    extends the series backwards). Independent of the rows already built, so a pre_hook and
    its model agree. Rows: (city_code, first_week, first_month). -#}
{% macro user_ops_rebuild_from() -%}
    select
        city_code,
        cast(date_trunc('week', min(day)) as date) as first_week,
        cast(date_trunc('month', min(day)) as date) as first_month
    from (
        select city_code, event_day as day from ({{ affected_days('service_access') }})
        union all
        select city_code, dt from {{ ref('stg_audit__deliveries') }} where batch_id > {{ since_batch() }}
    )
    group by city_code
{%- endmacro %}

{#- The same for retention_monthly, plus first_cohort: the month of the earliest account-event
    day new batches touched (a late or removed register event can move users between cohorts
    from that month on). Rows: (city_code, first_month, first_cohort); either may be null. -#}
{% macro retention_rebuild_from() -%}
    select city_code, min(first_month) as first_month, min(first_cohort) as first_cohort
    from (
        select city_code, first_month, null::date as first_cohort from ({{ user_ops_rebuild_from() }})
        union all
        select city_code, null::date, cast(date_trunc('month', min(event_day)) as date)
        from ({{ affected_days('registrations') }})
        group by city_code
    )
    group by city_code
{%- endmacro %}

{#- pre_hooks of the incremental user-operations marts: drop the rows the model inserts again. -#}
{#- month-keyed marts (stickiness_monthly, service_paths): the months from the rebuild's first on. -#}
{% macro delete_months_from_rebuild() -%}
    {% if is_incremental() %}
    delete from {{ this }} t
    where exists (select 1 from ({{ user_ops_rebuild_from() }}) r
                  where r.city_code = t.city_code and t.month >= r.first_month)
    {% endif %}
{%- endmacro %}

{% macro delete_retention_from_rebuild() -%}
    {% if is_incremental() %}
    delete from {{ this }} t
    where exists (select 1 from ({{ retention_rebuild_from() }}) r
                  where r.city_code = t.city_code
                    and (t.cohort_month + to_months(t.months_since) >= r.first_month or t.cohort_month >= r.first_cohort))
    {% endif %}
{%- endmacro %}

