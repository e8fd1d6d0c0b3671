with source as (
    select * from {{ source('landing', 'claims') }}
),

renamed as (
    select
        claim_id,
        reversal_of,
        transaction_date,
        fill_date,
        prescriber_npi as npi,
        payer_id,
        plan_id,
        ndc,
        days_supply::bigint as days_supply,
        quantity::bigint as quantity,
        copay::double as copay,
        copay_assist::double as copay_assist,
        status,
        reject_code,
        _partition as delivery
    from source
)

select * from renamed
