with source as (
    select * from {{ source('landing', 'npp_engagement') }}
),

renamed as (
    select
        activity_date,
        campaign_id,
        campaign_name,
        product,
        channel,
        audience,
        nullif(trim(recipient_hash), '') as recipient_hash,
        sends::bigint as sends,
        opens::bigint as opens,
        clicks::bigint as clicks,
        visits::bigint as visits,
        spend::double as spend,
        _partition as delivery
    from source
)

select * from renamed
