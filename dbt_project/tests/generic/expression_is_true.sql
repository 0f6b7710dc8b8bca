{% test expression_is_true(model, expression) %}
-- Fails for every row where `expression` is false (NULL counts as passing: rates may be null).
select * from {{ model }} where not ({{ expression }})
{% endtest %}
