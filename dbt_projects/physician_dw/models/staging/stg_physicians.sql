with source as (
    select * from {{ source('physician_master', 'physicians') }}
),

renamed as (
    select
        mesh_id as physician_id,
        npi,
        me_number,
        physician_name,
        specialty,
        state,
        zip,
        status,
        record_source
    from source
)

select * from renamed
