-- One row per ticket: its winning version across every opened day (staging keeps one per ticket
-- and opened day; a version that moved opened_at to another day is ranked here once more, with
-- the same rule: macros/latest_copy.sql). Small: one ticket per bad review.
select t.*
from {{ ref('stg_landing__review_tickets') }} t
qualify {{ latest_version_rank('t', 'ticket_id', 'updated_ts_utc', 'delivered_dt') }} = 1
