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
