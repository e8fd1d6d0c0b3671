-- One row per day of the calendar's span (vars calendar_first_day..calendar_last_day), with
-- the Saturday that ends its Sunday-to-Saturday week: the week ending of weekly Rx and claims.
with days as (
    select unnest(generate_series(
        date '{{ var("calendar_first_day") }}',
        date '{{ var("calendar_last_day") }}',
        interval 1 day
    ))::date as day
),

final as (
    select
        day,
        (day + (6 - dayofweek(day))::integer)::date as week_ending,
        strftime(day, '%Y-%m') as month,
        year(day)::varchar || '-Q' || quarter(day)::varchar as quarter,
        year(day)::bigint as year
    from days
)

select * from final
