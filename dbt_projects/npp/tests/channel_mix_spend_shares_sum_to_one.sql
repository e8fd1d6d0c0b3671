-- Every product that spent anything splits its spend over its channels completely: the
-- channels' spend shares sum to 1 (rows returned are failures).
select
    product,
    sum(spend_share) as shares,
    sum(spend) as spend
from {{ ref('channel_mix') }}
group by product
having sum(spend) > 0 and abs(sum(spend_share) - 1) > 1e-9
