select city_code, source, dt, files, rows_read, rows_loaded, rows_rejected, ingested_at, content_hash, batch_id
from {{ source('audit', 'deliveries') }}
