-- Each prescriber's TRx share of the brand within the market basket over the last weeks, and
-- a decile (10 = highest basket volume) for targeting.
{% set brand = var('brand', 'ZENVIRA') %}

with rx as (
    select * from {{ ref('fact_rx_weekly') }}
),

by_physician as (
    select
        physician_id,
        sum(trx)::bigint as basket_trx,
        sum(case when product = '{{ brand }}' then trx else 0 end)::bigint as brand_trx,
        sum(case when is_projected then trx else 0 end)::bigint as projected_trx,
        count(distinct week_ending) as weeks_active
    from rx
    group by physician_id
),

final as (
    select
        physician_id,
        '{{ brand }}' as brand,
        basket_trx,
        brand_trx,
        case when basket_trx > 0 then brand_trx / basket_trx else 0 end::double as brand_share,
        case when basket_trx > 0 then projected_trx / basket_trx else 0 end::double
            as projected_fraction,
        weeks_active,
        ntile(10) over (order by basket_trx, physician_id) as basket_decile
    from by_physician
)

select * from final
