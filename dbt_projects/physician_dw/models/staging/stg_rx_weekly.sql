with source as (
    select * from {{ source('landing', 'rx_weekly') }}
),

renamed as (
    select
        prescriber_npi as npi,
        product,
        week_ending,
        nrx::bigint as nrx,
        trx::bigint as trx,
        data_type = 'projected' as is_projected,
        _partition as delivery
    from source
)

select * from renamed
