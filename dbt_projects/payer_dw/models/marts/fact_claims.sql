-- Every claim of the weeks being built, signed so that a reversal cancels the claim it
-- reverses: paid +1, reversed -1, rejected 0, applied to quantity, gross at WAC, co-pay and
-- co-pay assistance. Amounts are rounded to the cent before the sign is applied, so a reversal
-- and its original are exact opposites.
with claims as (
    select * from {{ ref('stg_claims') }}
    -- a partitioned build: only the weeks being published
    {{ mesh_partition_filter('transaction_date') }}
),

products as (
    select ndc, product, wac_unit_price from {{ ref('stg_products') }}
),

physicians as (
    select physician_id, npi from {{ ref('stg_physicians') }}
),

signed as (
    select
        claims.*,
        case claims.status when 'paid' then 1 when 'reversed' then -1 else 0 end as sign,
        products.product,
        round(claims.quantity * products.wac_unit_price::decimal(18, 4), 2) as gross_at_wac,
        physicians.physician_id
    from claims
    -- left joins: an NDC missing from the product master fails the contract, not silently
    left join products on products.ndc = claims.ndc
    left join physicians on physicians.npi = claims.npi
),

final as (
    select
        claim_id,
        reversal_of,
        transaction_date,
        fill_date,
        {{ week_ending('transaction_date') }} as week_ending,
        physician_id,
        plan_id,
        payer_id,
        ndc,
        product,
        status,
        days_supply,
        quantity,
        (sign * quantity)::bigint as signed_quantity,
        (sign * gross_at_wac)::double as gross_amount,
        (sign * copay::decimal(18, 2))::double as copay,
        (sign * copay_assist::decimal(18, 2))::double as copay_assist
    from signed
)

select * from final
