-- Each territory's prescribing and field effort per product, over every published week of Rx
-- and day of calls. A physician belongs to the territory that the current alignment gives the
-- zip3 of their practice; physicians without a zip3 in it, and calls on CRM accounts unknown
-- to the master, belong to no territory and are left out.
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

rx as (
    select physician_id, product, sum(nrx) as nrx, sum(trx) as trx
    from {{ ref('fact_rx_weekly') }}
    group by physician_id, product
),

calls as (
    select physician_id, product, count(*) as calls, sum(samples) as samples
    from {{ ref('fact_calls') }}
    where physician_id is not null
    group by physician_id, product
),

activity as (
    select
        coalesce(rx.physician_id, calls.physician_id) as physician_id,
        coalesce(rx.product, calls.product) as product,
        coalesce(rx.nrx, 0) as nrx,
        coalesce(rx.trx, 0) as trx,
        coalesce(calls.calls, 0) as calls,
        coalesce(calls.samples, 0) as samples
    from rx
    full outer join calls
        on calls.physician_id = rx.physician_id and calls.product = rx.product
),

by_territory as (
    select
        aligned.territory,
        activity.product,
        aligned.district,
        aligned.region,
        count(distinct activity.physician_id)::bigint as physicians,
        sum(activity.nrx)::bigint as nrx,
        sum(activity.trx)::bigint as trx,
        sum(activity.calls)::bigint as calls,
        sum(activity.samples)::bigint as samples
    from activity
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
