with source as (
    select * from {{ source('physician_master', 'physician_xref') }}
),

renamed as (
    select
        source_system,
        source_id,
        mesh_id as physician_id,
        match_method,
        match_score
    from source
)

select * from renamed
