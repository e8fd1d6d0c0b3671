-- Clicks per open can never leave 0..1 (the landing contract keeps clicks within opens).
select *
from {{ ref('channel_mix') }}
where click_rate < 0 or click_rate > 1
