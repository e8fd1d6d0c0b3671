{#- The Saturday that ends the week of a date (weeks run Sunday to Saturday, as the claims
    deliveries and the weekly partitions do). -#}
{% macro week_ending(day) -%}
    ({{ day }} + (6 - dayofweek({{ day }}))::integer)
{%- endmacro %}
