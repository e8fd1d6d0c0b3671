-- The golden physicians with the master's conformed name, so that both warehouses describe a
-- physician alike.
select
    physician_id,
    npi,
    physician_name,
    coalesce(specialty, 'Unknown') as specialty,
    state
from {{ ref('stg_physicians') }}
