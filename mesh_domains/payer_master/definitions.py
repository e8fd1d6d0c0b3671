"""Code location of the payer master domain (dbt: dbt_projects/payer_master)."""

from pathlib import Path

from mesh_domains.platform import domain_definitions, load_domain
from mesh_domains.platform.dbt import dbt_domain_assets

domain = load_domain(Path(__file__).parent / "domain.yaml")
defs = domain_definitions(domain.path, assets=dbt_domain_assets(domain))
