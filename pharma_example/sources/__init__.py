"""One module per landing source: what it holds, its quirks, and how its files are written.

:data:`SOURCES` lists them in the order of DESIGN §3: the AMA file, the CRM, weekly Rx,
claims, formulary, rebates, alignment, field calls, NPP engagement and the product master.
"""

from __future__ import annotations

from ..output import Source
from . import (
    alignment,
    ama_physician,
    claims,
    crm_accounts,
    field_calls,
    formulary,
    npp_engagement,
    product_master,
    rebates,
    rx_weekly,
)

SOURCES: dict[str, Source] = {
    m.SOURCE.name: m.SOURCE
    for m in (
        ama_physician,
        crm_accounts,
        rx_weekly,
        claims,
        formulary,
        rebates,
        alignment,
        field_calls,
        npp_engagement,
        product_master,
    )
}
