with source as (
    select * from {{ source('physician_master', 'physicians') }}
),

renamed as (
    select
        mesh_id as physician_id,
        npi,
        first_name,
        last_name,
        specialty,
        state
    from source
)

select * from renamed
