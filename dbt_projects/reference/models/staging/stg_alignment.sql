with source as (
    select * from {{ source('landing', 'alignment') }}
),

renamed as (
    select
        zip3,
        state,
        territory,
        district,
        region,
        rep_id,
        rep_name,
        effective_date::date as effective_date,
        _partition as delivery
    from source
)

select * from renamed
