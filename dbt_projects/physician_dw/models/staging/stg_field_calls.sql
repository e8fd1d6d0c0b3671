with source as (
    select * from {{ source('landing', 'field_calls') }}
),

renamed as (
    select
        call_id,
        crm_id,
        rep_id,
        call_date,
        channel,
        product_detailed as product,
        samples::bigint as samples,
        _partition as delivery
    from source
)

select * from renamed
