with physicians as (
    select * from {{ ref('stg_physicians') }}
),

final as (
    select
        physician_id,
        npi,
        me_number,
        physician_name,
        coalesce(specialty, 'Unknown') as specialty,
        state,
        status,
        record_source = 'ama' as is_in_ama_file
    from physicians
)

select * from final
