with source as (
    select * from {{ source('reference', 'territory_alignment') }}
),

renamed as (
    select
        zip3,
        territory,
        district,
        region,
        rep_id,
        effective_from,
        effective_to,
        is_current
    from source
)

select * from renamed
