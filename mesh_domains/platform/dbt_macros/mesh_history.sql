{#
  The platform's dbt macros, on every dbt domain's macro path (dbt_project.yml:
  macro-paths: ["macros", "../../mesh_domains/platform/dbt_macros"]).

  mesh_history: a slowly changing dimension (type 2) over every delivery of a full-file source
  loaded into staging (one file per period, column `delivery`). A key opens a new row when one
  of its listed `values` changes, or when a file lists it again after one that did not; a row
  ends (inclusive) the day before the next file takes effect when that file changes or drops it.
  Rows still listed in the newest file are current: exactly one per key of that file. Values
  are compared as one struct, which is null-safe (a value staying null is no change).
#}
{% macro mesh_history(relation, key, values, valid_from='valid_from', valid_to='valid_to', effective='effective_date') %}
with files as (
    select
        delivery,
        min({{ effective }}) as takes_effect,
        row_number() over (order by delivery) as file_number
    from {{ relation }}
    group by delivery
),

listed as (
    select
        {%- for column in key + values %}
        source.{{ column }},
        {%- endfor %}
        source.{{ effective }} as effective_day,
        files.file_number,
        struct_pack({{ values | join(', ') }}) as listed_values
    from {{ relation }} as source
    inner join files on files.delivery = source.delivery
),

flagged as (
    select
        *,
        case
            when lag(file_number) over by_key is distinct from file_number - 1 then 1
            when lag(listed_values) over by_key is distinct from listed_values then 1
            else 0
        end as opens_row
    from listed
    window by_key as (partition by {{ key | join(', ') }} order by file_number)
),

numbered as (
    select
        *,
        sum(opens_row) over (
            partition by {{ key | join(', ') }} order by file_number rows unbounded preceding
        ) as row_of_key
    from flagged
),

versions as (
    -- the listed values are the same in every file of a row
    select
        {{ (key + values) | join(', ') }},
        min(effective_day) as {{ valid_from }},
        max(file_number) as last_file
    from numbered
    group by {{ (key + ['row_of_key'] + values) | join(', ') }}
),

final as (
    select
        {%- for column in key + values %}
        versions.{{ column }},
        {%- endfor %}
        versions.{{ valid_from }},
        (next_file.takes_effect - 1)::date as {{ valid_to }},
        next_file.file_number is null as is_current
    from versions
    left join files as next_file on next_file.file_number = versions.last_file + 1
)

select * from final
{% endmacro %}


{#
  mesh_partition_filter: in a partitioned build (the platform passes the build's window as the
  vars partition_start / partition_end), keep only the rows of the periods being published.
#}
{% macro mesh_partition_filter(column) -%}
{%- if var('partition_start', none) -%}
where {{ column }} between '{{ var("partition_start") }}' and '{{ var("partition_end") }}'
{%- endif -%}
{%- endmacro %}
