"""Kitchens: development sandboxes of one or more domains, ready in seconds.

A kitchen is a namespace of the mesh (``MESH_KITCHEN``, :mod:`..settings`) with a data root of
its own, ``data/kitchens/<name>/``: the lakes and staging of its domains, their logs and its own
Dagster instance. It runs the code of the working tree, or of a git ref checked out into a
worktree of its own (``<kitchen>/code``), and reads every other domain's ports at the versions
production served when it was made: their pointers (``current.json``, a few hundred bytes that
name immutable Parquet files) are copied into its lake folders, no data is. Reading still
goes through grants.

- :mod:`.sandbox`: create, list, build, destroy a kitchen; its environment for the UI;
- :mod:`.diff`: each kitchen port against production (schema, contract, rows, keys),
  classified as compatible or breaking for the port's consumers;
- :mod:`.promote`: the kitchen's code on production's current inputs, audited with the
  production contracts, published to production as new port versions;
- :mod:`.cli`: ``mesh kitchen ...``.
"""
