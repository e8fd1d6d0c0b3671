-- Exactly one current row per plan and product of the newest formulary file, none for a
-- listing it no longer has (the rows returned break the rule).
with newest_file as (
    select plan_id, product
    from {{ source('landing', 'formulary') }}
    where _partition = (select max(_partition) from {{ source('landing', 'formulary') }})
),

current_rows as (
    select plan_id, product, count(*) filter (where is_current) as current_rows
    from {{ ref('formulary_history') }}
    group by plan_id, product
)

select
    coalesce(current_rows.plan_id, newest_file.plan_id) as plan_id,
    coalesce(current_rows.product, newest_file.product) as product,
    coalesce(current_rows.current_rows, 0) as current_rows,
    newest_file.plan_id is not null as in_newest_file
from current_rows
full outer join newest_file
    on newest_file.plan_id = current_rows.plan_id and newest_file.product = current_rows.product
where coalesce(current_rows.current_rows, 0)
    <> case when newest_file.plan_id is null then 0 else 1 end
