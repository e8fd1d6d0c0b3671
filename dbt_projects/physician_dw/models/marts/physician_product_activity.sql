-- Each physician's prescribing and field effort per product, over every published week of Rx
-- and day of calls: the state the territory mart aggregates (a new week changes the rows of its
-- prescribers, not the whole history). Calls on CRM accounts unknown to the master are left out.

{#- activity_sums: macros/activity_sums.sql #}
with sides as (
{% if mesh_incremental() %}
    -- weeks of Rx or days of calls were published since the served version: its rows, less
    -- those periods as they were then, plus those periods as they are now (a period is
    -- replaced whole)
    select physician_id, product, nrx, trx, rx_weeks, calls, samples from {{ mesh_served() }}
    union all
    {{ activity_sums(mesh_before('fact_rx_weekly'), mesh_before('fact_calls'), sign='-') }}
    union all
    {{ activity_sums(mesh_after('fact_rx_weekly'), mesh_after('fact_calls')) }}
{% else %}
    {{ activity_sums(ref('fact_rx_weekly'), ref('fact_calls')) }}
{% endif %}
)

select
    physician_id,
    product,
    sum(nrx)::bigint as nrx,
    sum(trx)::bigint as trx,
    sum(rx_weeks)::bigint as rx_weeks,
    sum(calls)::bigint as calls,
    sum(samples)::bigint as samples
from sides
group by physician_id, product
-- a physician and product whose every week and call was taken back has no row, as in a full
-- build
having sum(rx_weeks) + sum(calls) > 0
