-- One row per counted bad review (score <= 2, reviews.md) with the ticket that answers it, its
-- deadline and its outcome as of the city's as-of day: the one home of the per-review facts the
-- monthly marts, the 好差评 report and the dashboard read. No user id, handler note or comment.
with bad as (
    select r.city_code, r.event_id, r.access_event_id, r.service_id, r.score, r.event_day,
           r.user_key is not null as real_name
    from {{ ref('stg_landing__ratings') }} r
    where {{ is_bad_review('r.score') }}
),

-- One ticket answers one rating: the latest opened_at, ties the larger ticket_id.
answering as (
    select t.*
    from {{ ref('int_review_tickets_latest') }} t
    semi join bad on bad.city_code = t.city_code and bad.event_id = t.rating_event_id
    qualify row_number() over (partition by t.city_code, t.rating_event_id
                               order by t.opened_ts_utc desc, t.ticket_id desc) = 1
),

accesses as (
    select a.city_code, a.event_id, a.channel
    from {{ ref('stg_landing__service_access') }} a
    semi join bad on bad.city_code = a.city_code and bad.access_event_id = a.event_id
),

-- The latest day with a complete review_tickets delivery (NULL: none, nothing is overdue yet).
as_of as (
    select city_code, max(dt) as as_of_day
    from {{ ref('stg_audit__deliveries') }}
    where source = 'review_tickets'
    group by city_code
),

items as (
    select
        bad.city_code,
        cast(date_trunc('month', bad.event_day) as date) as month,
        bad.event_day as rating_day,
        bad.event_id as rating_event_id,
        bad.service_id,
        {{ channel_or_unknown('accesses.channel') }} as channel,
        bad.score,
        bad.real_name,
        t.ticket_id,
        coalesce(t.department, 'unassigned') as department,
        coalesce(nullif(t.category, ''), 'untagged') as category,
        t.status,
        due.due_day,
        t.rectified_at_local as rectified_at,
        coalesce(t.replied_ts_utc is not null, false) as replied,
        coalesce(t.called_back, false) as called_back,
        coalesce(t.status = 'appeal_upheld', false) as unfounded,
        as_of.as_of_day
    from bad
    left join answering t on t.city_code = bad.city_code and t.rating_event_id = bad.event_id
    left join accesses on accesses.city_code = bad.city_code and accesses.event_id = bad.access_event_id
    left join {{ ref('int_review_due_days') }} due on due.rating_day = bad.event_day
    left join as_of on as_of.city_code = bad.city_code
)

select
    city_code, month, rating_day, rating_event_id, service_id, channel, score, real_name, ticket_id,
    department, category, status, due_day, rectified_at, replied, called_back, unfounded,
    case
        when unfounded then 'unfounded'
        when status = 'rectified' and cast(rectified_at as date) <= due_day then 'rectified_on_time'
        when status = 'rectified' then 'rectified_late'
        when due_day < as_of_day then 'overdue_open'
        else 'open_not_due'
    end as outcome,
    as_of_day
from items
