-- Each plan's current listing of each product, scored for access: 1 when covered on tier 1-2
-- with no prior authorisation or step edit, lower for a worse tier and for each edit, 0 when
-- not covered. (Tier factors: 1-2 -> 1, 3 -> 0.7, 4 -> 0.45, 5 -> 0.25, covered without a
-- tier -> 0.5; prior authorisation x 0.6; step therapy x 0.8. A covered product scores at
-- least 0.12.)
with listings as (
    select * from {{ ref('stg_formulary_history') }}
    where is_current
),

plans as (
    select plan_id, payer_id, channel, covered_lives from {{ ref('dim_plan') }}
),

scored as (
    select
        listings.*,
        case
            when listings.coverage <> 'covered' then 0.0
            else
                case
                    when listings.tier is null then 0.5
                    when listings.tier <= 2 then 1.0
                    when listings.tier = 3 then 0.7
                    when listings.tier = 4 then 0.45
                    else 0.25
                end
                * case when listings.prior_auth then 0.6 else 1.0 end
                * case when listings.step_therapy then 0.8 else 1.0 end
        end as access_score
    from listings
),

final as (
    select
        scored.plan_id,
        scored.product,
        plans.payer_id,
        plans.channel,
        plans.covered_lives,
        scored.coverage,
        scored.tier,
        scored.prior_auth,
        scored.step_therapy,
        scored.access_score::double as access_score
    from scored
    left join plans on plans.plan_id = scored.plan_id
)

select * from final
