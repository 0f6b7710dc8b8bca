-- The steps of the run's funnels (funnels.yml, validated by citycloud/funnels.py): one row per
-- funnel step with its filters; no rows when the run has no funnels file.
{% set rows = funnel_step_rows() %}
select
    cast(funnel as string) as funnel,
    cast(definition_fingerprint as string) as definition_fingerprint,
    cast(window_days as integer) as window_days,
    cast(step as integer) as step,
    cast(step_label as string) as step_label,
    cast(event as string) as event,
    cast(is_first as boolean) as is_first,
    cast(min_auth_level as integer) as min_auth_level,
    cast(service_id as string) as service_id,
    cast(category as string) as category,
    cast(department as string) as department,
    cast(outcome as string) as outcome,
    cast(channel as string) as channel
from (values
    {%- for r in rows %}
    ({{ sql_text(r.funnel) }}, {{ sql_text(r.fingerprint) }}, {{ r.window_days }}, {{ r.step }},
     {{ sql_text(r.step_label) }}, {{ sql_text(r.event) }}, {{ 'true' if r.is_first else 'false' }},
     {{ r.min_auth_level if r.min_auth_level is not none else 'null' }}, {{ sql_text(r.service_id) }},
     {{ sql_text(r.category) }}, {{ sql_text(r.department) }}, {{ sql_text(r.outcome) }}, {{ sql_text(r.channel) }}){{ ',' if not loop.last }}
    {%- else %}
    (null, null, null, null, null, null, null, null, null, null, null, null, null)
    {%- endfor %}
) as t(funnel, definition_fingerprint, window_days, step, step_label, event, is_first, min_auth_level,
       service_id, category, department, outcome, channel)
{% if not rows %}where false{% endif %}
