{#-
  An input port read at the version pinned for this build. Before dbt runs, the platform writes
  the version of every input port into the staging table `main._mesh_input_versions`
  (port, version); the source's database is the producer's lake, attached read-only after the
  grant check. Reading the pin at execution time (not through --vars) keeps dbt's partial
  parsing valid from one build to the next.
-#}
{% macro port_source(domain, port) -%}
  {%- set key = domain ~ '/' ~ port -%}
  {%- set version = none -%}
  {%- if execute -%}
    {%- set found = run_query("select version from main._mesh_input_versions where port = '" ~ key ~ "'") -%}
    {%- if found and found.rows | length > 0 -%}{%- set version = found.rows[0][0] -%}{%- endif -%}
  {%- endif -%}
  {{ source(domain, port) }}{% if version is not none %} at (version => {{ version }}){% endif %}
{%- endmacro %}
