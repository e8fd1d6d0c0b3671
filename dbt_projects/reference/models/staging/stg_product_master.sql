with source as (
    select * from {{ source('landing', 'product_master') }}
),

renamed as (
    select
        ndc,
        product,
        molecule,
        manufacturer,
        strength,
        dosage_form,
        package_size::bigint as package_size,
        wac_unit_price::double as wac_unit_price,
        market_basket,
        own_brand::boolean as own_brand,
        launch_date::date as launch_date,
        _partition as release
    from source
)

select * from renamed
