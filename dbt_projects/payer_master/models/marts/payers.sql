-- One row per payer, named as in the newest file that lists it (delivery folders are YYYY-MM).
with formulary as (
    select * from {{ ref('stg_formulary') }}
),

final as (
    select
        payer_id,
        payer_name
    from formulary
    qualify row_number() over (
        partition by payer_id order by delivery desc, payer_name
    ) = 1
)

select * from final
