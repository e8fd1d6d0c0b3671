with rx as (
    select * from {{ ref('stg_rx_weekly') }}
),

physicians as (
    select physician_id, npi from {{ ref('stg_physicians') }}
),

final as (
    select
        physicians.physician_id,
        rx.product,
        rx.week_ending,
        rx.nrx,
        rx.trx,
        rx.is_projected
    from rx
    inner join physicians on physicians.npi = rx.npi
    {% if var('partition_start', none) %}
    -- a partitioned build: only the weeks being published
    where rx.week_ending between '{{ var("partition_start") }}' and '{{ var("partition_end") }}'
    {% endif %}
)

select * from final
