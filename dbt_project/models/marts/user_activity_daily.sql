{{ config(materialized=view_unless_spark()) }}
-- The user-days behind DAU and MAU, for the semantic layer's exact count_distinct (MAU over a
-- month is not a sum of days). A view here; publish copies it into marts (and the readers'
-- snapshot) with the other marts. user_key is the keyed hash, never the id.
select city_code, event_day, user_key, successful_accesses
from {{ ref('int_user_activity_aggregated_to_days') }}
