{#
  Incremental ports (see mesh_domains/platform/dbt.py, incremental_ports). When the platform
  can build a port from its served version and the partitions of the domain's own ports that
  changed since, it passes the var `mesh_incremental` (the ports that can) and makes these
  relations ready in the staging database:

  mesh_incremental()  true when this model may be built that way in this build
  mesh_served()       this port's served rows
  mesh_before(port)   the rows of the changed partitions of `port` when the served version read it
  mesh_after(port)    the rows of those partitions now

  A model keeps its full query for every other build (a first build, new code, other
  parameters, another input port version).
#}
{% macro mesh_incremental() %}
  {{ return(model.name in var('mesh_incremental', [])) }}
{% endmacro %}

{% macro mesh_served() %}main."__mesh_served_{{ model.name }}"{% endmacro %}

{% macro mesh_before(port) %}main."__mesh_before_{{ port }}"{% endmacro %}

{% macro mesh_after(port) %}main."__mesh_after_{{ port }}"{% endmacro %}
