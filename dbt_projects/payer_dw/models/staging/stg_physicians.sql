-- The golden physicians as this warehouse keys and names them (conformed: the master's name).
select
    mesh_id as physician_id,
    npi,
    physician_name,
    specialty,
    state
from {{ source('physician_master', 'physicians') }}
