-- The 好差评 loop per city, covered month of the rating and department, plus `all` summing the
-- city (reviews.md): grades of every counted rating (`all` only), bad reviews by outcome, the
-- on-time and call-back rates, the as-of day and whether the month is settled.
with months as (
    select city_code, period_start as month
    from {{ ref('int_city_periods_covered') }}
    where grain = 'month'
),

grades as (
    select g.city_code, cast(date_trunc('month', g.event_day) as date) as month,
           cast(sum(g.ratings) as bigint) as ratings,
           {% for s in [5, 4, 3, 2, 1] %}cast(sum(case when g.score = {{ s }} then g.ratings else 0 end) as bigint) as grade_{{ s }},
           {% endfor %}
           sum(g.score * g.ratings) as score_sum
    from {{ ref('int_ratings_graded_to_days') }} g
    group by g.city_code, cast(date_trunc('month', g.event_day) as date)
),

items as (
    select i.*
    from {{ ref('review_items') }} i
    semi join months m on m.city_code = i.city_code and m.month = i.month
),

-- A month is settled once every bad review of it is due before the as-of day.
month_state as (
    select m.city_code, m.month, a.as_of_day,
           coalesce(max(i.due_day) < a.as_of_day, count(i.rating_event_id) = 0) as settled
    from months m
    left join items i on i.city_code = m.city_code and i.month = m.month
    left join (select city_code, max(dt) as as_of_day from {{ ref('stg_audit__deliveries') }}
               where source = 'review_tickets' group by city_code) a on a.city_code = m.city_code
    group by m.city_code, m.month, a.as_of_day
),

by_department as (
    select city_code, month, department,
           count(*) as bad_reviews,
           count(*) filter (where unfounded) as unfounded,
           count(*) filter (where outcome = 'rectified_on_time') as rectified_on_time,
           count(*) filter (where outcome = 'rectified_late') as rectified_late,
           count(*) filter (where outcome = 'overdue_open') as overdue_open,
           count(*) filter (where real_name and not unfounded) as real_name_bad,
           count(*) filter (where real_name and not unfounded and called_back) as called_back,
           count(*) filter (where not unfounded and replied) as replied
    from items
    group by city_code, month, department
),

city_rows as (
    select m.city_code, m.month, 'all' as department,
           coalesce(g.ratings, 0) as ratings,
           coalesce(g.grade_5, 0) as grade_5, coalesce(g.grade_4, 0) as grade_4, coalesce(g.grade_3, 0) as grade_3,
           coalesce(g.grade_2, 0) as grade_2, coalesce(g.grade_1, 0) as grade_1,
           cast(g.score_sum as double) / nullif(g.ratings, 0) as average_score,
           {% for c in ['bad_reviews', 'unfounded', 'rectified_on_time', 'rectified_late', 'overdue_open',
                        'real_name_bad', 'called_back', 'replied'] %}cast(coalesce(sum(d.{{ c }}), 0) as bigint) as {{ c }}{{ ',' if not loop.last }}
           {% endfor %}
    from months m
    left join grades g on g.city_code = m.city_code and g.month = m.month
    left join by_department d on d.city_code = m.city_code and d.month = m.month
    group by m.city_code, m.month, g.ratings, g.grade_5, g.grade_4, g.grade_3, g.grade_2, g.grade_1, g.score_sum
),

department_rows as (
    select city_code, month, department,
           cast(null as bigint) as ratings, cast(null as bigint) as grade_5, cast(null as bigint) as grade_4,
           cast(null as bigint) as grade_3, cast(null as bigint) as grade_2, cast(null as bigint) as grade_1,
           cast(null as double) as average_score,
           bad_reviews, unfounded, rectified_on_time, rectified_late, overdue_open, real_name_bad, called_back, replied
    from by_department
),

all_rows as (
    select * from city_rows
    union all
    select * from department_rows
)

select
    r.city_code, r.month, r.department,
    r.ratings, r.grade_5, r.grade_4, r.grade_3, r.grade_2, r.grade_1, r.average_score,
    r.bad_reviews, r.unfounded, r.rectified_on_time, r.rectified_late, r.overdue_open,
    cast(r.rectified_on_time as double) / nullif(r.bad_reviews - r.unfounded, 0) as on_time_rate,
    r.real_name_bad, r.called_back,
    cast(r.called_back as double) / nullif(r.real_name_bad, 0) as callback_rate,
    r.replied,
    s.settled,
    s.as_of_day
from all_rows r
join month_state s on s.city_code = r.city_code and s.month = r.month
