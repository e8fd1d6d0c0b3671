-- Each product's channel mix over every published day: the channel's share of the product's
-- spend (the shares of a product sum to 1) and its click rate (clicks per open).
with engagement as (
    select * from {{ ref('engagement_daily') }}
),

by_channel as (
    select
        product,
        channel,
        sum(sends)::bigint as sends,
        sum(opens)::bigint as opens,
        sum(clicks)::bigint as clicks,
        sum(visits)::bigint as visits,
        round(sum(spend), 2)::double as spend
    from engagement
    group by product, channel
),

final as (
    select
        product,
        channel,
        sends,
        opens,
        clicks,
        visits,
        spend,
        coalesce(spend / nullif(sum(spend) over (partition by product), 0), 0)::double
            as spend_share,
        (clicks / nullif(opens, 0))::double as click_rate
    from by_channel
)

select * from final
