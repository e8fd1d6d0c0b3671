-- One row per plan with the values of the newest file that lists it: the plan's payer, name,
-- channel and covered lives (which drift month to month). A file lists a plan once per
-- product with the same plan values; the order below only makes the choice deterministic.
with formulary as (
    select * from {{ ref('stg_formulary') }}
),

final as (
    select
        plan_id,
        payer_id,
        plan_name,
        channel,
        covered_lives
    from formulary
    qualify row_number() over (
        partition by plan_id
        order by delivery desc, covered_lives desc, payer_id, plan_name, channel
    ) = 1
)

select * from final
