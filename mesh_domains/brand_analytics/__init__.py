"""brand_analytics: physician segments, the targeting list and weekly brand KPIs (polars)."""
