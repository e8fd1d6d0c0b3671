-- One row per day, campaign and channel: the recipients reached (distinct hashes; radio has
-- none) and the day's volumes and spend.
with engagement as (
    select * from {{ ref('stg_npp_engagement') }}
    -- a partitioned build: only the days being published
    {{ mesh_partition_filter('activity_date') }}
),

final as (
    select
        activity_date,
        campaign_id,
        channel,
        campaign_name,
        product,
        audience,
        count(distinct recipient_hash)::bigint as recipients,
        sum(sends)::bigint as sends,
        sum(opens)::bigint as opens,
        sum(clicks)::bigint as clicks,
        sum(visits)::bigint as visits,
        round(sum(spend), 2)::double as spend
    from engagement
    -- a campaign has one name, product and audience: a second one would break the key
    group by activity_date, campaign_id, channel, campaign_name, product, audience
)

select * from final
