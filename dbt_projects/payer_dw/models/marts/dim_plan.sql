with plans as (
    select * from {{ ref('stg_plans') }}
),

payers as (
    select * from {{ ref('stg_payers') }}
),

final as (
    select
        plans.plan_id,
        plans.payer_id,
        payers.payer_name,
        plans.plan_name,
        plans.channel,
        plans.covered_lives
    from plans
    left join payers on payers.payer_id = plans.payer_id
)

select * from final
