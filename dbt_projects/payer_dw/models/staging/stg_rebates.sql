with source as (
    select * from {{ source('landing', 'rebates') }}
),

renamed as (
    select
        contract_id,
        payer_id,
        product,
        channel,
        tier::bigint as tier,
        rebate_rate::double as rebate_rate,
        effective_from,
        effective_to,
        _partition as delivery
    from source
)

select * from renamed
