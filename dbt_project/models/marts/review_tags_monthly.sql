-- Bad reviews per city, covered month and tag (reviews.md): unfounded ones included; `untagged`
-- for a bad review without a ticket or with an empty category. A row for each tag with one or more.
select i.city_code, i.month, i.category, count(*) as bad_reviews
from {{ ref('review_items') }} i
semi join {{ ref('int_city_periods_covered') }} c
    on c.city_code = i.city_code and c.grain = 'month' and c.period_start = i.month
group by i.city_code, i.month, i.category
