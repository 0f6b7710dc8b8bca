-- Tickets whose rating_event_id matches no counted rating of their city, as of this build
-- (reviews.md): the winning version of each, with the delivery, file and line it came from. They
-- count nowhere; a rating arriving later matches its ticket at the next build, and the ticket
-- leaves this table.
select t.city_code, t.ticket_id, t.rating_event_id, t.delivered_dt as dt, t.file, t.line
from {{ ref('int_review_tickets_latest') }} t
where not exists (
    select 1 from {{ ref('stg_landing__ratings') }} r
    where r.city_code = t.city_code and r.event_id = t.rating_event_id
)
