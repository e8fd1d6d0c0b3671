with source as (
    select * from {{ source('landing', 'formulary') }}
),

renamed as (
    select
        payer_id,
        payer_name,
        plan_id,
        plan_name,
        channel,
        covered_lives::bigint as covered_lives,
        product,
        coverage,
        tier::bigint as tier,
        prior_auth::boolean as prior_auth,
        step_therapy::boolean as step_therapy,
        quantity_limit::boolean as quantity_limit,
        effective_date::date as effective_date,
        _partition as delivery
    from source
)

select * from renamed
