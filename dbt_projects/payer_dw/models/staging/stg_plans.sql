with source as (
    select * from {{ source('payer_master', 'plans') }}
),

renamed as (
    select
        plan_id,
        payer_id,
        plan_name,
        channel,
        covered_lives::bigint as covered_lives
    from source
)

select * from renamed
