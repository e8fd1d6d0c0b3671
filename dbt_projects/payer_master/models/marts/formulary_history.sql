-- Each plan's listing of each product as a slowly changing dimension (type 2) over every
-- monthly formulary file loaded. A listing opens a new row when its coverage, tier, prior
-- authorisation, step edit or quantity limit changes, or when a file lists it again after one
-- that did not; a row ends (inclusive) the day before the next file takes effect when that
-- file changes or drops it. Rows still listed in the newest file are current: exactly one per
-- plan and product of that file. Covered lives and plan names are plan values (see plans), not
-- listed values: their monthly drift opens no row.
{{
    mesh_history(
        ref('stg_formulary'),
        key=['plan_id', 'product'],
        values=['coverage', 'tier', 'prior_auth', 'step_therapy', 'quantity_limit'],
        valid_from='valid_from',
        valid_to='valid_to'
    )
}}
