{#- Every row of the model satisfies a SQL expression (a business rule across columns). -#}
{% test expression_is_true(model, expression) %}
select * from {{ model }} where not ({{ expression }})
{% endtest %}
