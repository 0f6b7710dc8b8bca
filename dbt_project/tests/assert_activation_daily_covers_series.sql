-- activation_daily has exactly the days of each city's series (kpi_daily), none missing or extra.
select coalesce(k.city_code, a.city_code) as city_code, coalesce(k.kpi_date, a.registration_day) as day
from {{ ref('kpi_daily') }} k
full outer join {{ ref('activation_daily') }} a on a.city_code = k.city_code and a.registration_day = k.kpi_date
where k.kpi_date is null or a.registration_day is null
