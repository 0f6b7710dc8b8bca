-- The change log of the batches this build has not seen yet (see macros/since_batch.sql).
select batch_id, city_code, source, dt, event_day, rows, change
from {{ source('audit', 'delivery_changes') }}
where batch_id > {{ since_batch() }}
