-- Summed over channels, accesses, successes and register events equal kpi_daily's, and the
-- channels' active users are at least dau (a user may use two channels); days with no
-- channel row must have zeros in kpi_daily.
with channels as (
    select city_code, kpi_date, sum(total_accesses) as total_accesses,
           sum(successful_accesses) as successful_accesses, sum(new_registrations) as new_registrations,
           sum(active_users) as active_users
    from {{ ref('channel_daily') }}
    group by all
)

select k.city_code, k.kpi_date
from {{ ref('kpi_daily') }} k
left join channels c on c.city_code = k.city_code and c.kpi_date = k.kpi_date
where k.total_accesses <> coalesce(c.total_accesses, 0)
    or k.successful_accesses <> coalesce(c.successful_accesses, 0)
    or k.new_registrations <> coalesce(c.new_registrations, 0)
    or k.dau > coalesce(c.active_users, 0)
