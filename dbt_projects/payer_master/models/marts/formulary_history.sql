-- Each plan's listing of each product as a slowly changing dimension (type 2) over every
-- monthly formulary file loaded. A listing opens a new row when its coverage, tier, prior
-- authorisation, step edit or quantity limit changes, or when a file lists it again after one
-- that did not; a row ends (inclusive) the day before the next file takes effect when that
-- file changes or drops it. Rows still listed in the newest file are current: exactly one per
-- plan and product of that file. Covered lives and plan names are plan values (see plans), not
-- listed values: their monthly drift opens no row.
with formulary as (
    select * from {{ ref('stg_formulary') }}
),

files as (
    select
        delivery,
        min(effective_date) as takes_effect,
        row_number() over (order by delivery) as file_number
    from formulary
    group by delivery
),

listed as (
    select
        formulary.plan_id,
        formulary.product,
        formulary.coverage,
        formulary.tier,
        formulary.prior_auth,
        formulary.step_therapy,
        formulary.quantity_limit,
        formulary.effective_date,
        files.file_number,
        struct_pack(
            formulary.coverage,
            formulary.tier,
            formulary.prior_auth,
            formulary.step_therapy,
            formulary.quantity_limit
        ) as listed_values
    from formulary
    inner join files on files.delivery = formulary.delivery
),

flagged as (
    select
        *,
        -- struct comparison is null-safe: a product staying without a tier is no change
        case
            when lag(file_number) over by_listing is distinct from file_number - 1 then 1
            when lag(listed_values) over by_listing is distinct from listed_values then 1
            else 0
        end as opens_row
    from listed
    window by_listing as (partition by plan_id, product order by file_number)
),

numbered as (
    select
        *,
        sum(opens_row) over (
            partition by plan_id, product order by file_number rows unbounded preceding
        ) as row_of_listing
    from flagged
),

versions as (
    -- the listed values are the same in every file of a row
    select
        plan_id,
        product,
        row_of_listing,
        coverage,
        tier,
        prior_auth,
        step_therapy,
        quantity_limit,
        min(effective_date) as valid_from,
        max(file_number) as last_file
    from numbered
    group by
        plan_id, product, row_of_listing, coverage, tier, prior_auth, step_therapy, quantity_limit
),

final as (
    select
        versions.plan_id,
        versions.product,
        versions.coverage,
        versions.tier,
        versions.prior_auth,
        versions.step_therapy,
        versions.quantity_limit,
        versions.valid_from,
        (next_file.takes_effect - 1)::date as valid_to,
        next_file.file_number is null as is_current
    from versions
    left join files as next_file on next_file.file_number = versions.last_file + 1
)

select * from final
