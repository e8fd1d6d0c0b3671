with source as (
    select * from {{ source('payer_master', 'formulary_history') }}
),

renamed as (
    select
        plan_id,
        product,
        coverage,
        tier::bigint as tier,
        prior_auth,
        step_therapy,
        valid_from,
        valid_to,
        is_current
    from source
)

select * from renamed
