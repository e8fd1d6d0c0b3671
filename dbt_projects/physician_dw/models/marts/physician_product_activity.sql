-- Each physician's prescribing and field effort per product, over every published week of Rx
-- and day of calls: the state the territory mart aggregates (a new week changes the rows of its
-- prescribers, not the whole history). Calls on CRM accounts unknown to the master are left out.

{#- per physician and product: the sums of one side, and zeros for the other -#}
{% set rx_sums %}
    sum(nrx)::bigint as nrx, sum(trx)::bigint as trx, count(*)::bigint as rx_weeks,
    0::bigint as calls, 0::bigint as samples
{% endset %}
{% set call_sums %}
    0::bigint as nrx, 0::bigint as trx, 0::bigint as rx_weeks,
    count(*)::bigint as calls, sum(samples)::bigint as samples
{% endset %}

{% if mesh_incremental() %}
-- weeks of Rx or days of calls were published since the served version: its rows, less those
-- periods as they were then, plus those periods as they are now (a period is replaced whole)
with changes as (
    select physician_id, product, -nrx as nrx, -trx as trx, -rx_weeks as rx_weeks,
           -calls as calls, -samples as samples
    from (
        select physician_id, product, {{ rx_sums }}
        from {{ mesh_before('fact_rx_weekly') }} group by all
        union all
        select physician_id, product, {{ call_sums }}
        from {{ mesh_before('fact_calls') }} where physician_id is not null group by all
    )
    union all
    select physician_id, product, {{ rx_sums }}
    from {{ mesh_after('fact_rx_weekly') }} group by all
    union all
    select physician_id, product, {{ call_sums }}
    from {{ mesh_after('fact_calls') }} where physician_id is not null group by all
),

both_sides as (
    select physician_id, product, nrx, trx, rx_weeks, calls, samples from {{ mesh_served() }}
    union all
    select * from changes
),

activity as (
    select
        physician_id,
        product,
        sum(nrx)::bigint as nrx,
        sum(trx)::bigint as trx,
        sum(rx_weeks)::bigint as rx_weeks,
        sum(calls)::bigint as calls,
        sum(samples)::bigint as samples
    from both_sides
    group by physician_id, product
    -- a physician and product whose every week and call was taken back has no row, as in a
    -- full build
    having sum(rx_weeks) + sum(calls) > 0
)
{% else %}
with activity as (
    select
        physician_id,
        product,
        sum(nrx)::bigint as nrx,
        sum(trx)::bigint as trx,
        sum(rx_weeks)::bigint as rx_weeks,
        sum(calls)::bigint as calls,
        sum(samples)::bigint as samples
    from (
        select physician_id, product, {{ rx_sums }}
        from {{ ref('fact_rx_weekly') }} group by all
        union all
        select physician_id, product, {{ call_sums }}
        from {{ ref('fact_calls') }} where physician_id is not null group by all
    )
    group by physician_id, product
)
{% endif %}

select physician_id, product, nrx, trx, rx_weeks, calls, samples from activity
