-- The alignment as a slowly changing dimension (type 2) over every quarterly file loaded.
-- A zip3 opens a new row when its territory, district, region or rep changes, or when a file
-- lists it again after one that did not; a row ends (inclusive) the day before the next file
-- takes effect when that file changes or drops it. Rows still listed in the newest file are
-- current: exactly one per zip3 of that file.
{{
    mesh_history(
        ref('stg_alignment'),
        key=['zip3'],
        values=['territory', 'district', 'region', 'rep_id', 'rep_name'],
        valid_from='effective_from',
        valid_to='effective_to'
    )
}}
