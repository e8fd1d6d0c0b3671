with source as (
    select * from {{ source('payer_master', 'payers') }}
),

renamed as (
    select
        payer_id,
        payer_name
    from source
)

select * from renamed
