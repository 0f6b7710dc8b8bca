-- A fixed-seed reservoir sample of each raw table's new rows (batch > $since_batch), one row per
-- pseudonymised value, for row-level Great Expectations checks whose exact SQL twin would cost a
-- regular expression per row at 10M rows (the exact length check runs over every row in the
-- raw_* suites; this adds the character set).
WITH reg AS (
    SELECT * FROM (SELECT city_code, dt, user_key, phone_hash, id_number_hash
                   FROM raw.registrations WHERE batch_id > $since_batch)
    USING SAMPLE reservoir({{sample_rows}} ROWS) REPEATABLE (7)
),
acc AS (
    SELECT * FROM (SELECT city_code, dt, user_key, client_ip_hash
                   FROM raw.service_access WHERE batch_id > $since_batch)
    USING SAMPLE reservoir({{sample_rows}} ROWS) REPEATABLE (7)
),
rat AS (
    SELECT * FROM (SELECT city_code, dt, user_key, comment_hash
                   FROM raw.ratings WHERE batch_id > $since_batch)
    USING SAMPLE reservoir({{sample_rows}} ROWS) REPEATABLE (7)
)
SELECT city_code, dt AS day, 'registrations' AS source, column_name, value
FROM (UNPIVOT reg ON user_key, phone_hash, id_number_hash INTO NAME column_name VALUE value)
UNION ALL
SELECT city_code, dt, 'service_access', column_name, value
FROM (UNPIVOT acc ON user_key, client_ip_hash INTO NAME column_name VALUE value)
UNION ALL
SELECT city_code, dt, 'ratings', column_name, value
FROM (UNPIVOT rat ON user_key, comment_hash INTO NAME column_name VALUE value)
ORDER BY source, city_code, day, column_name
