{#
  The sums physician_product_activity keeps per physician and product, over the weeks of Rx in
  `rx` and the days of calls in `calls` (calls on accounts unknown to the master left out), as
  one row per side: Rx rows carry no calls and call rows no Rx. `sign='-'` negates them (the
  periods taken back when the mart is built from its served rows).
#}
{% macro activity_sums(rx, calls, sign='') %}
    select physician_id, product, {{ sign }}sum(nrx) as nrx, {{ sign }}sum(trx) as trx,
           {{ sign }}count(*) as rx_weeks, 0 as calls, 0 as samples
    from {{ rx }} group by all
    union all
    select physician_id, product, 0, 0, 0, {{ sign }}count(*), {{ sign }}sum(samples)
    from {{ calls }} where physician_id is not null group by all
{% endmacro %}
