-- The zip3s of the newest alignment file (each file lists every zip3) and their state.
with alignment as (
    select * from {{ ref('stg_alignment') }}
),

final as (
    select
        zip3,
        state
    from alignment
    where delivery = (select max(delivery) from alignment)
)

select * from final
