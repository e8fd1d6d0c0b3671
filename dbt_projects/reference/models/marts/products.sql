-- The products of the newest product master release: each release is a full list, so an NDC
-- dropped from it is no longer a product (release folders are dates, YYYY-MM-DD).
with releases as (
    select * from {{ ref('stg_product_master') }}
),

newest as (
    select * from releases
    where release = (select max(release) from releases)
),

final as (
    select
        ndc,
        product,
        molecule,
        manufacturer,
        strength,
        dosage_form,
        package_size,
        wac_unit_price,
        market_basket,
        own_brand,
        launch_date
    from newest
)

select * from final
