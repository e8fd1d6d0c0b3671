-- Each territory's prescribing and field effort per product, over every published week of Rx
-- and day of calls (physician_product_activity). A physician belongs to the territory that the
-- current alignment gives the zip3 of their practice; physicians without a zip3 in it belong to
-- no territory and are left out.
with physicians as (
    select physician_id, left(zip, 3) as zip3 from {{ ref('stg_physicians') }}
),

alignment as (
    select zip3, territory, district, region
    from {{ ref('stg_territory_alignment') }}
    where is_current
),

aligned as (
    select physicians.physician_id, alignment.territory, alignment.district, alignment.region
    from physicians
    inner join alignment on alignment.zip3 = physicians.zip3
),

by_territory as (
    select
        aligned.territory,
        activity.product,
        aligned.district,
        aligned.region,
        -- one row per physician and product: a row is a physician involved
        count(*)::bigint as physicians,
        sum(activity.nrx)::bigint as nrx,
        sum(activity.trx)::bigint as trx,
        sum(activity.calls)::bigint as calls,
        sum(activity.samples)::bigint as samples
    from {{ ref('physician_product_activity') }} as activity
    inner join aligned on aligned.physician_id = activity.physician_id
    -- a territory lies in one district and region: a second one would repeat the key
    group by aligned.territory, activity.product, aligned.district, aligned.region
),

final as (
    select
        territory,
        product,
        district,
        region,
        physicians,
        nrx,
        trx,
        calls,
        samples,
        coalesce(trx / nullif(sum(trx) over (partition by territory), 0), 0)::double
            as share_of_basket
    from by_territory
)

select * from final
