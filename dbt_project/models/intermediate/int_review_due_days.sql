-- The due day of a bad review rated on each rating day (reviews.md, "Deadlines in working days"):
-- the N-th working day after the rating day R, R itself never counting (a rating on a holiday or
-- a weekend counts from the next working day the same way). N = rectify_working_days().
-- Working days: Monday to Friday less the seed's `holiday` days, plus its `workday` days
-- (make-up working days). Days of years the seed does not list (before 2024, after 2026) are
-- plain Monday–Friday: the State Council publishes each year's arrangement in the November
-- before, so a later year's deadlines move when its rows are added (docs/reviews.md).
{% set n = rectify_working_days() %}
with rating_days as (
    select distinct event_day as rating_day
    from {{ ref('stg_landing__ratings') }}
    where {{ is_bad_review('score') }}
),

-- Every calendar day from the first rating day to well past the last one's deadline: N working
-- days span at most 7/5 N calendar days plus the longest holiday (9 days in the seed).
days as (
    select cast(d.day as date) as day
    from (select min(rating_day) as first_day,
                 {{ plus_days('max(rating_day)', 2 * n + 30) }} as last_day
          from rating_days
          having count(*) > 0) b
        {{ series_lateral('b.first_day', 'b.last_day', '1 day', 'd', 'day') }}
),

numbered as (
    select
        days.day,
        case when h.kind = 'holiday' then false
             when h.kind = 'workday' then true
             else {{ iso_weekday('days.day') }} <= 5 end as is_working_day
    from days
    left join {{ ref('holiday_calendar') }} h on h.day = days.day
),

-- Working days up to and including each day: R's count plus N is the due day's number.
counted as (
    select day, is_working_day,
           sum(case when is_working_day then 1 else 0 end) over (order by day rows unbounded preceding) as working_days_so_far
    from numbered
)

select r.rating_day, due.day as due_day
from rating_days r
join counted c on c.day = r.rating_day
join counted due on due.is_working_day and due.working_days_so_far = c.working_days_so_far + {{ n }}
