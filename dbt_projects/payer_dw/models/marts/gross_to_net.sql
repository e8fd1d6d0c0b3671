-- Weekly gross-to-net per product, payer and channel. Each paid or reversed claim's rebate is
-- its gross times the contract rate in force on its FILL date for the payer, product, channel
-- and the tier the plan listed the product on THEN (a reversal thereby cancels exactly the
-- rebate of its original). Money is summed as decimals, so net = gross - rebates - co-pay
-- assistance holds to the cent.
with claims as (
    select * from {{ ref('fact_claims') }}
    where status in ('paid', 'reversed')
),

plans as (
    select plan_id, channel from {{ ref('dim_plan') }}
),

formulary as (
    select plan_id, product, tier, valid_from, valid_to from {{ ref('stg_formulary_history') }}
),

rebate_terms as (
    -- a term spanning quarters is listed in each quarter's file, and a later file may restate
    -- its end (an amendment took effect): the newest listing of a term is the one that holds
    select * from {{ ref('stg_rebates') }}
    qualify row_number() over (
        partition by contract_id, tier, effective_from order by delivery desc
    ) = 1
),

claims_on_tier as (
    -- the plan's listing of the product in force on the fill date: the latest one begun by
    -- then, unless it ended (valid_to, inclusive) before: a listing dropped has no tier
    select
        claims.*,
        plans.channel,
        case
            when formulary.valid_to is null or claims.fill_date <= formulary.valid_to
                then formulary.tier
        end as tier
    from claims
    left join plans on plans.plan_id = claims.plan_id
    asof left join formulary
        on formulary.plan_id = claims.plan_id
        and formulary.product = claims.product
        and claims.fill_date >= formulary.valid_from
),

rated as (
    select
        claims_on_tier.*,
        coalesce(rebate_terms.rebate_rate, 0) as rebate_rate
    from claims_on_tier
    left join rebate_terms
        on rebate_terms.payer_id = claims_on_tier.payer_id
        and rebate_terms.product = claims_on_tier.product
        and rebate_terms.channel = claims_on_tier.channel
        and rebate_terms.tier = claims_on_tier.tier
        and claims_on_tier.fill_date between rebate_terms.effective_from and rebate_terms.effective_to
    -- terms of one contract never overlap; should two, the one begun last holds
    qualify row_number() over (
        partition by claims_on_tier.claim_id order by rebate_terms.effective_from desc nulls last
    ) = 1
),

per_claim as (
    select
        week_ending,
        product,
        payer_id,
        channel,
        gross_amount::decimal(18, 2) as gross,
        -- rounded on the unsigned amount, then signed: a reversal's rebate is the exact opposite
        (
            case when gross_amount < 0 then -1 else 1 end
            * round(abs(gross_amount::decimal(18, 2)) * rebate_rate::decimal(10, 6), 2)
        )::decimal(18, 2) as rebate,
        copay_assist::decimal(18, 2) as copay_assist
    from rated
),

by_week as (
    select
        week_ending,
        product,
        payer_id,
        channel,
        sum(gross) as gross_sales,
        sum(rebate) as rebates,
        sum(copay_assist) as copay_assistance
    from per_claim
    group by week_ending, product, payer_id, channel
),

final as (
    select
        week_ending,
        product,
        payer_id,
        channel,
        gross_sales::double as gross_sales,
        rebates::double as rebates,
        copay_assistance::double as copay_assistance,
        (gross_sales - rebates - copay_assistance)::double as net_sales
    from by_week
)

select * from final
