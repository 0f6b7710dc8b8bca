-- Account status changes per city and event day, as deltas whose running sum is the
-- number of registered (and of verified) users at the end of each day.
--
-- A user is registered at the end of day D when their latest register/cancel event with
-- event day <= D is a register; at the same instant a cancel wins (it sorts last).
-- A registered user is verified when their highest auth_level over register/verify events
-- with event day <= D is 2 or more. Account events are small next to accesses, so this
-- is a full rebuild (exact however late an event arrives).
with events as (
    select
        city_code,
        user_key,
        event_id,
        event_type,
        event_ts_utc,
        event_day,
        case event_type when 'register' then 1 when 'cancel' then 0 end as registered_after,
        case when event_type in ('register', 'verify') then auth_level end as auth_level_seen,
        case event_type when 'cancel' then 1 else 0 end as same_instant_rank
    from {{ ref('stg_landing__registrations') }}
),

running as (
    select
        *,
        coalesce({{ last_non_null('registered_after') }} over user_history, 0) as is_registered,
        coalesce(max(auth_level_seen) over user_history, 0) >= 2 as has_verified_level,
        row_number() over (
            partition by city_code, user_key, event_day
            order by event_ts_utc desc, same_instant_rank desc, event_id desc
        ) as nth_from_day_end
    from events
    window user_history as (
        partition by city_code, user_key
        order by event_ts_utc, same_instant_rank, event_id
        rows between unbounded preceding and current row
    )
),

user_day_end as (
    select
        city_code,
        user_key,
        event_day,
        is_registered,
        case when is_registered = 1 and has_verified_level then 1 else 0 end as is_verified
    from running
    where nth_from_day_end = 1
),

user_day_deltas as (
    select
        city_code,
        event_day,
        is_registered - coalesce(lag(is_registered) over user_days, 0) as registered_delta,
        is_verified - coalesce(lag(is_verified) over user_days, 0) as verified_delta
    from user_day_end
    window user_days as (partition by city_code, user_key order by event_day)
),

event_counts as (
    select
        city_code,
        event_day,
        count(*) filter (where event_type = 'register') as new_registrations,
        count(*) filter (where event_type = 'cancel') as cancellations
    from events
    group by all
)

select
    coalesce(d.city_code, c.city_code) as city_code,
    coalesce(d.event_day, c.event_day) as event_day,
    coalesce(d.registered_delta, 0) as registered_delta,
    coalesce(d.verified_delta, 0) as verified_delta,
    coalesce(c.new_registrations, 0) as new_registrations,
    coalesce(c.cancellations, 0) as cancellations
from (
    select city_code, event_day, sum(registered_delta) as registered_delta, sum(verified_delta) as verified_delta
    from user_day_deltas
    group by all
) d
full outer join event_counts c on c.city_code = d.city_code and c.event_day = d.event_day
