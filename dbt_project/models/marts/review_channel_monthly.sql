-- Counted ratings per city, covered month and the rated access's channel ('unknown' when the
-- rating names no delivered access): the grade distribution by channel of the 好差评 report.
select
    g.city_code,
    cast(date_trunc('month', g.event_day) as date) as month,
    g.channel,
    cast(sum(g.ratings) as bigint) as ratings,
    {% for s in [5, 4, 3, 2, 1] %}cast(sum(case when g.score = {{ s }} then g.ratings else 0 end) as bigint) as grade_{{ s }},
    {% endfor %}
    cast(sum(case when {{ is_bad_review('g.score') }} then g.ratings else 0 end) as bigint) as bad_reviews
from {{ ref('int_ratings_graded_to_days') }} g
semi join {{ ref('int_city_periods_covered') }} c
    on c.city_code = g.city_code and c.grain = 'month' and c.period_start = cast(date_trunc('month', g.event_day) as date)
group by g.city_code, cast(date_trunc('month', g.event_day) as date), g.channel
