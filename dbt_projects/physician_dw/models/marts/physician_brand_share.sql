-- Each prescriber's TRx share of the brand within the market basket over every published week,
-- and a decile (10 = highest basket volume) for targeting.
{% set brand = var('brand', 'ZENVIRA') %}

{#- per physician: the sums a row of this port holds -#}
{% set sums_of %}
    sum(trx)::bigint as basket_trx,
    sum(case when product = '{{ brand }}' then trx else 0 end)::bigint as brand_trx,
    sum(case when is_projected then trx else 0 end)::bigint as projected_trx,
    count(distinct week_ending) as weeks_active
{% endset %}

with rx as (
    select * from {{ ref('fact_rx_weekly') }}
),

{% if mesh_incremental() %}
-- weeks of Rx were published since the served version: its sums, less those weeks as they
-- were then, plus those weeks as they are now (a week is replaced whole, so its distinct
-- weeks per physician come and go with it)
changes as (
    select physician_id, -basket_trx as basket_trx, -brand_trx as brand_trx,
           -projected_trx as projected_trx, -weeks_active as weeks_active
    from (select physician_id, {{ sums_of }} from {{ mesh_before('fact_rx_weekly') }} group by 1)
    union all
    select physician_id, {{ sums_of }} from {{ mesh_after('fact_rx_weekly') }} group by 1
),

delta as (
    select physician_id, sum(basket_trx) as basket_trx, sum(brand_trx) as brand_trx,
           sum(projected_trx) as projected_trx, sum(weeks_active) as weeks_active
    from changes
    group by physician_id
),

by_physician as (
    select
        coalesce(served.physician_id, delta.physician_id) as physician_id,
        (coalesce(served.basket_trx, 0) + coalesce(delta.basket_trx, 0))::bigint as basket_trx,
        (coalesce(served.brand_trx, 0) + coalesce(delta.brand_trx, 0))::bigint as brand_trx,
        (coalesce(served.projected_trx, 0) + coalesce(delta.projected_trx, 0))::bigint
            as projected_trx,
        (coalesce(served.weeks_active, 0) + coalesce(delta.weeks_active, 0))::bigint
            as weeks_active
    from {{ mesh_served() }} as served
    full outer join delta on delta.physician_id = served.physician_id
    -- a physician whose every week was taken back has no row, as in a full build
    where coalesce(served.weeks_active, 0) + coalesce(delta.weeks_active, 0) > 0
),
{% else %}
by_physician as (
    select physician_id, {{ sums_of }}
    from rx
    group by physician_id
),
{% endif %}

final as (
    select
        physician_id,
        '{{ brand }}' as brand,
        basket_trx,
        brand_trx,
        case when basket_trx > 0 then brand_trx / basket_trx else 0 end::double as brand_share,
        projected_trx,
        case when basket_trx > 0 then projected_trx / basket_trx else 0 end::double
            as projected_fraction,
        weeks_active,
        ntile(10) over (order by basket_trx, physician_id) as basket_decile
    from by_physician
)

select * from final
