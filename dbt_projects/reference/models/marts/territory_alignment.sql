-- The alignment as a slowly changing dimension (type 2) over every quarterly file loaded.
-- A zip3 opens a new row when its territory, district, region or rep changes, or when a file
-- lists it again after one that did not; a row ends (inclusive) the day before the next file
-- takes effect when that file changes or drops it. Rows still listed in the newest file are
-- current: exactly one per zip3 of that file.
with alignment as (
    select * from {{ ref('stg_alignment') }}
),

files as (
    select
        delivery,
        min(effective_date) as takes_effect,
        row_number() over (order by delivery) as file_number
    from alignment
    group by delivery
),

listed as (
    select
        alignment.zip3,
        alignment.territory,
        alignment.district,
        alignment.region,
        alignment.rep_id,
        alignment.rep_name,
        alignment.effective_date,
        files.file_number,
        struct_pack(
            alignment.territory,
            alignment.district,
            alignment.region,
            alignment.rep_id,
            alignment.rep_name
        ) as listed_values
    from alignment
    inner join files on files.delivery = alignment.delivery
),

flagged as (
    select
        *,
        -- struct comparison is null-safe: a vacant territory staying vacant is no change
        case
            when lag(file_number) over by_zip3 is distinct from file_number - 1 then 1
            when lag(listed_values) over by_zip3 is distinct from listed_values then 1
            else 0
        end as opens_row
    from listed
    window by_zip3 as (partition by zip3 order by file_number)
),

numbered as (
    select
        *,
        sum(opens_row) over (
            partition by zip3 order by file_number rows unbounded preceding
        ) as row_of_zip3
    from flagged
),

versions as (
    -- the listed values are the same in every file of a row
    select
        zip3,
        row_of_zip3,
        territory,
        district,
        region,
        rep_id,
        rep_name,
        min(effective_date) as effective_from,
        max(file_number) as last_file
    from numbered
    group by zip3, row_of_zip3, territory, district, region, rep_id, rep_name
),

final as (
    select
        versions.zip3,
        versions.territory,
        versions.district,
        versions.region,
        versions.rep_id,
        versions.rep_name,
        versions.effective_from,
        (next_file.takes_effect - 1)::date as effective_to,
        next_file.file_number is null as is_current
    from versions
    left join files as next_file on next_file.file_number = versions.last_file + 1
)

select * from final
