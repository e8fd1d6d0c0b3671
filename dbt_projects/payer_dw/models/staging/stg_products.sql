with source as (
    select * from {{ source('reference', 'products') }}
),

renamed as (
    select
        ndc,
        product,
        wac_unit_price::double as wac_unit_price,
        own_brand
    from source
)

select * from renamed
