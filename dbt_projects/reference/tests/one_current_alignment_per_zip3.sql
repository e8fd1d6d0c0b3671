-- Exactly one current row per zip3 of the newest alignment file, none for a zip3 it no
-- longer lists (the rows returned break the rule).
with newest_file as (
    select zip3
    from {{ source('landing', 'alignment') }}
    where _partition = (select max(_partition) from {{ source('landing', 'alignment') }})
),

current_rows as (
    select zip3, count(*) filter (where is_current) as current_rows
    from {{ ref('territory_alignment') }}
    group by zip3
)

select
    coalesce(current_rows.zip3, newest_file.zip3) as zip3,
    coalesce(current_rows.current_rows, 0) as current_rows,
    newest_file.zip3 is not null as in_newest_file
from current_rows
full outer join newest_file on newest_file.zip3 = current_rows.zip3
where coalesce(current_rows.current_rows, 0) <> case when newest_file.zip3 is null then 0 else 1 end
