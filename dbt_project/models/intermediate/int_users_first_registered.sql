-- One row per city and registered user: the user's first registration (earliest counted
-- register event; ties at one instant: the smallest event_id). Its event day is the
-- registration day, its month the cohort month, its channel the acquisition channel.
-- Cancelling never moves a user out of its cohort. Account events are small: a table,
-- exact however late a first registration arrives.
select
    city_code,
    user_key,
    event_id as first_register_event_id,
    event_ts_utc as registered_at_utc,
    event_day as registration_day,
    cast(date_trunc('month', event_day) as date) as cohort_month,
    {{ channel_or_unknown('channel') }} as acquisition_channel
from {{ ref('stg_landing__registrations') }}
where event_type = 'register' and user_key is not null
qualify row_number() over (partition by city_code, user_key order by event_ts_utc, event_id) = 1
