-- One row per field call, with the golden physician of the CRM account called on (null for an
-- account the physician master does not know, e.g. one created on a rep's tablet, never synced).
with calls as (
    select * from {{ ref('stg_field_calls') }}
    -- a partitioned build: only the days being published
    {{ mesh_partition_filter('call_date') }}
),

crm_accounts as (
    select source_id as crm_id, physician_id
    from {{ ref('stg_physician_xref') }}
    where source_system = 'crm'
),

final as (
    select
        calls.call_id,
        crm_accounts.physician_id,
        calls.crm_id,
        calls.rep_id,
        calls.call_date,
        calls.channel,
        calls.product,
        calls.samples
    from calls
    left join crm_accounts on crm_accounts.crm_id = calls.crm_id
)

select * from final
