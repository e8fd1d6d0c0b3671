-- A reversal and the claim it cancels net to zero on every signed amount (where the original
-- is among the claims being built: a reversal may come weeks after it).
with claims as (
    select * from {{ ref('fact_claims') }}
)

select reversal.claim_id, reversal.reversal_of
from claims as reversal
inner join claims as original on original.claim_id = reversal.reversal_of
where reversal.status = 'reversed'
    and (
        original.status <> 'paid'
        or reversal.signed_quantity + original.signed_quantity <> 0
        or reversal.gross_amount + original.gross_amount <> 0
        or reversal.copay + original.copay <> 0
        or reversal.copay_assist + original.copay_assist <> 0
    )
