-- The golden physicians, named and classified the way physician_dw's dimension does, so that
-- both warehouses describe a physician alike.
with physicians as (
    select * from {{ ref('stg_physicians') }}
),

final as (
    select
        physician_id,
        npi,
        coalesce(first_name || ' ' || last_name, 'Unknown prescriber ' || npi) as physician_name,
        coalesce(specialty, 'Unknown') as specialty,
        state
    from physicians
)

select * from final
