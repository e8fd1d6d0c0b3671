"""Entity resolution for physicians, in DuckDB.

The AMA file is the spine: its NPIs become golden records. Rx prescribers unknown to the AMA file
become golden records of their own (``rx_only``). CRM accounts are matched to a golden record by
NPI when the NPI is present and the names agree, else by name (nickname-aware, Jaro-Winkler on
the surname) within the same state; accounts that match neither stay out of the cross-reference
and are counted in the match metrics.

The CRM matching is the costly part (a name join within state and given name) and depends only
on the AMA file and the CRM accounts: when the served version was matched by this code from the
same AMA and CRM deliveries — a new week of Rx arrived, nothing else — its CRM matches are reused.
Then the Rx deliveries alone decide what changes, and millions of unchanged rows are neither
staged nor written again: a week that names no prescriber new to the served version changes
nothing (its rows are kept as the new version); a week that adds prescribers (and drops none)
adds their golden records and cross-references to the served rows. Otherwise the golden records
and the cross-reference are computed again (the matches still reused).
"""

from __future__ import annotations

from mesh_domains.platform import BuildContext, port_builder

# The golden id: the NPI scrambled by a bijection on 40 bits (an odd multiplier modulo 2^40), so
# ids are stable, opaque and never collide (a hash prefix would, at a million physicians).
MESH_ID = "'MP' || lpad(hex((npi::hugeint * 42517567383) % 1099511627776)::varchar, 10, '0')"
NAME_MATCH_THRESHOLD = 0.92
NPI_NAME_AGREEMENT = 0.75
NICKNAMES = {
    "bill": "william",
    "will": "william",
    "bob": "robert",
    "rob": "robert",
    "liz": "elizabeth",
    "beth": "elizabeth",
    "kate": "katherine",
    "kathy": "katherine",
    "jim": "james",
    "jimmy": "james",
    "mike": "michael",
    "jen": "jennifer",
    "jenny": "jennifer",
    "tom": "thomas",
    "dick": "richard",
    "rick": "richard",
    "dave": "david",
    "joe": "joseph",
    "chris": "christopher",
    "dan": "daniel",
    "steve": "steven",
    "sue": "susan",
    "tony": "anthony",
    "pat": "patricia",
    "peggy": "margaret",
    "maggie": "margaret",
    "meg": "margaret",
    "chuck": "charles",
    "charlie": "charles",
    "andy": "andrew",
    "matt": "matthew",
    "nick": "nicholas",
    "sam": "samuel",
    "ben": "benjamin",
    "alex": "alexander",
    "ed": "edward",
    "ted": "edward",
    "larry": "lawrence",
    "ron": "ronald",
    "don": "donald",
    "greg": "gregory",
    "jeff": "jeffrey",
    "ken": "kenneth",
    "tim": "timothy",
}


def _nickname_table(build: BuildContext) -> None:
    values = ", ".join(f"('{k}', '{v}')" for k, v in NICKNAMES.items())
    build.con.execute(
        f"create or replace temp table nicknames as "
        f"select * from (values {values}) as t(nickname, given_name)"
    )


@port_builder("physicians", "physician_xref")
def master_physicians(build: BuildContext) -> dict:
    """Golden physician records and the source-id cross-reference, with match metrics."""
    ama = build.source("ama_physician", latest_only=True)
    crm = build.source("crm_accounts")
    rx = build.source("rx_weekly")
    _nickname_table(build)
    con = build.con
    if build.params.get("states"):  # a subset (e.g. the canary's): these states' physicians
        states = [s.strip().upper() for s in str(build.params["states"]).split(",") if s.strip()]
        con.execute(
            f"create or replace temp table ama_subset as "
            f"select * from {ama} where list_contains(?, state)",
            [states],
        )
        con.execute(
            f"create or replace temp table rx_subset as select * from {rx} "
            "where prescriber_npi in (select npi from ama_subset)"
        )
        ama, rx = "ama_subset", "rx_subset"
    reused = build.unchanged_since_served("physician_xref", "ama_physician", "crm_accounts")
    if reused is not None:
        outcome = _new_prescribers_only(build, ama, crm, rx, reused)
        if outcome is not None:
            return outcome
        _reused_accounts(build, crm)
    else:
        _current_accounts(build, crm)
    _all_prescribers(build, rx)
    build.stage("physicians", _golden_sql(ama, "rx_npis"))
    if reused is None:
        _match_accounts(build)
    else:
        build.log.info(
            f"physician_master: AMA and CRM deliveries unchanged since version {reused}: "
            "its CRM matches are reused"
        )
        con.execute(f"create or replace temp table crm_matches as {_served_matches(build)}")
    con.execute("""
        update main.physicians p set crm_accounts = m.n
        from (select mesh_id, count(*)::bigint as n from crm_matches group by mesh_id) m
        where m.mesh_id = p.mesh_id
    """)
    build.stage("physician_xref", _xref_sql(ama, "rx_npis", "main.physicians", "crm_matches"))
    metrics = _metrics(
        build, "main.physicians", "select * from crm_matches", "select * from crm_current"
    )
    if reused is not None:
        metrics["crm_matches_reused_from_version"] = reused
    return {"physicians": metrics, "physician_xref": metrics}


def _golden_sql(ama: str, npis: str) -> str:
    """Golden records: the AMA spine, and the prescribers of ``npis`` unknown to it."""
    return f"""
        with spine as (
            select npi, me_number, first_name, last_name, specialty, state, zip, status,
                   'ama' as record_source
            from {ama}
        ),
        rx_only as (
            select npi from {npis} where npi not in (select npi from spine)
        ),
        golden as (
            select * from spine
            union all
            select npi, null, null, null, null, null, null, 'unknown', 'rx_only' from rx_only
        )
        select {MESH_ID} as mesh_id, npi, me_number, first_name, last_name,
               -- the name every consumer shows: the warehouses conform to it, not re-derive it
               coalesce(first_name || ' ' || last_name, 'Unknown prescriber ' || npi)
                   as physician_name,
               specialty, state, zip, status, record_source,
               0::bigint as crm_accounts
        from golden
    """


def _xref_sql(ama: str | None, npis: str, physicians: str, matches: str | None) -> str:
    """Cross-references: AMA ME numbers (unless ``ama`` is None), the prescribers of ``npis``
    and the CRM ``matches`` (unless None), each to its golden record in ``physicians``."""
    parts = [
        f"""select 'rx' as source_system, r.npi as source_id, p.mesh_id,
               'identity' as match_method, 1.0::double as match_score
        from {npis} r join {physicians} p using (npi)"""
    ]
    if ama is not None:
        parts.insert(
            0,
            f"""select 'ama' as source_system, a.me_number as source_id, p.mesh_id,
               'identity' as match_method, 1.0::double as match_score
        from {ama} a join {physicians} p using (npi)""",
        )
    if matches is not None:
        parts.append(
            f"""select 'crm' as source_system, crm_id as source_id, mesh_id, match_method,
               round(match_score, 4)::double as match_score
        from {matches}"""
        )
    return "\n        union all\n        ".join(parts)


def _all_prescribers(build: BuildContext, rx: str) -> None:
    """Every prescriber of the Rx deliveries once, as ``rx_npis`` (the Rx deliveries are the
    largest input: read them once)."""
    build.con.execute(
        f"create or replace temp table rx_npis as select distinct prescriber_npi as npi from {rx}"
    )


def _rx_added_since_served(build: BuildContext) -> list[str] | None:
    """The Rx deliveries (partitions) added since the served version, when every delivery it
    read is still here with the same bytes: the served prescribers are then all still
    prescribers, and only the added deliveries can name new ones. None otherwise."""
    then = build.served_delivery_versions("physician_xref", "rx_weekly")
    now = build.delivery_versions.get("rx_weekly") or {}
    if not then or any(now.get(partition) != sha for partition, sha in then.items()):
        return None
    return sorted(set(now) - set(then))


def _new_prescribers_only(
    build: BuildContext, ama: str, crm: str, rx: str, reused: int
) -> dict | None:
    """With the AMA and CRM deliveries of the served version, the Rx deliveries decide what
    changes. No prescriber new to it: its rows stay, kept as the new version. Only new ones
    (none gone): its rows stay and theirs are added — a golden record for each one the AMA
    file lacks (no CRM account can match such a record: it has no name) and a cross-reference
    for each. When every Rx delivery the served version read is unchanged, only the added
    deliveries are read. Returns the build's metrics, or None when the master must be staged
    whole."""
    con = build.con
    served_rx = (
        f"select source_id as npi from {build.served('physician_xref')} where source_system = 'rx'"
    )
    added = _rx_added_since_served(build)
    if added is None:
        _all_prescribers(build, rx)
        con.execute(
            "create or replace temp table new_npis as "
            f"select npi from rx_npis where npi not in ({served_rx})"
        )
        gone = con.execute(
            f"select count(*) from ({served_rx}) where npi not in (select npi from rx_npis)"
        ).fetchone()[0]
        if gone:
            return None
    else:
        con.execute(
            "create or replace temp table new_npis as select distinct prescriber_npi as npi "
            f"from {rx} where list_contains(?, _partition) and prescriber_npi not in ({served_rx})",
            [added],
        )
    new = con.execute("select count(*) from new_npis").fetchone()[0]
    served = build.served("physicians")
    if not new:
        version = build.keep_served("physicians", "physician_xref")
        whole = served
        note = {"rows_kept_from_version": version}
        said = "no prescriber new to version {v}: its rows are kept as the new version"
    else:
        whole = f"(select * from {served} union all select * from main.physicians)"
        version = build.extend_served(
            {  # staged in this order: the cross-references read the added golden records
                "physicians": f"select * from ({_golden_sql(ama, 'new_npis')}) "
                "where record_source = 'rx_only'",
                "physician_xref": _xref_sql(None, "new_npis", whole, None),
            }
        )
        note = {"rows_added_to_version": version, "prescribers_added": new}
        said = f"{new} prescriber(s) new to version {{v}}: its rows stay, theirs are added"
    if version is None:
        return None
    build.log.info(f"physician_master: AMA and CRM deliveries unchanged, {said.format(v=version)}")
    served_figures = {k: v for k, v in build.served_metrics("physicians").items() if k in FIGURES}
    if not new and len(served_figures) == len(FIGURES):  # the same rows: the same figures
        metrics = served_figures
    else:
        metrics = _metrics(build, whole, _served_matches(build), f"select * from {crm}")
    metrics.update(note, crm_matches_reused_from_version=reused)
    return {"physicians": metrics, "physician_xref": metrics}


def _reused_accounts(build: BuildContext, crm: str) -> None:
    """The same AMA and CRM deliveries: the matches cannot differ, only the count is needed."""
    build.con.execute(
        f"create or replace temp table crm_current as select distinct crm_id from {crm}"
    )


def _served_matches(build: BuildContext) -> str:
    """The served version's CRM matches, as the query of a table like ``crm_matches``."""
    return f"""
        select source_id as crm_id, mesh_id, match_method, match_score
        from {build.served("physician_xref")} where source_system = 'crm'
    """


def _current_accounts(build: BuildContext, crm: str) -> None:
    """Each CRM account's latest state, with its given name resolved from nicknames."""
    build.con.execute(f"""
        create or replace temp table crm_current as
        with ranked as (
            select *, row_number() over (partition by crm_id order by changed_at desc) as rn
            from {crm}
        )
        select crm_id, npi, first_name, last_name, state,
               coalesce(n.given_name, lower(first_name)) as given_name
        from ranked left join nicknames n on n.nickname = lower(first_name)
        where rn = 1
    """)


# Accounts whose NPI is an AMA golden record's and whose surname agrees with it (``npi_ok``).
NPI_MATCHES = f"""
    by_npi as (
        select c.crm_id, p.mesh_id, 'npi' as match_method,
               jaro_winkler_similarity(lower(c.last_name), lower(p.last_name)) as match_score
        from crm_current c join main.physicians p on p.npi = c.npi
        where p.record_source = 'ama'
    ),
    npi_ok as (select * from by_npi where match_score >= {NPI_NAME_AGREEMENT})
"""


def _match_accounts(build: BuildContext) -> None:
    """Match each current CRM account to a golden record: by NPI when the names agree, else by
    name within the state (same given name, nickname-aware; the most similar surname at or
    above the threshold, ties to the lowest mesh id)."""
    con = build.con
    con.execute(f"""
        create or replace temp table crm_matches as
        with {NPI_MATCHES},
        unmatched as (
            select crm_id, state, given_name, lower(last_name) as last_name
            from crm_current where crm_id not in (select crm_id from npi_ok)
        ),
        golden as (
            select mesh_id, state, lower(first_name) as given_name, lower(last_name) as last_name
            from main.physicians
        ),
        -- each distinct pair of surnames that meet in a block (state and given name) is scored
        -- once, not once per pair of rows: blocks grow with the population, surnames do not
        surname_pairs as (
            select crm_last, golden_last, jaro_winkler_similarity(crm_last, golden_last) as score
            from (
                select distinct u.last_name as crm_last, g.last_name as golden_last
                from (select distinct state, given_name, last_name from unmatched) u
                join (select distinct state, given_name, last_name from golden) g
                  using (state, given_name)
            )
            where jaro_winkler_similarity(crm_last, golden_last) >= {NAME_MATCH_THRESHOLD}
        ),
        by_name as (
            select u.crm_id, g.mesh_id, 'name' as match_method, s.score as match_score
            from unmatched u
            join surname_pairs s on s.crm_last = u.last_name
            join golden g
              on g.state = u.state and g.given_name = u.given_name and g.last_name = s.golden_last
            qualify row_number() over (partition by u.crm_id order by s.score desc, g.mesh_id) = 1
        )
        select * from npi_ok union all select * from by_name
    """)


# what _metrics reports
FIGURES = (
    "crm_accounts",
    "crm_matched_by_npi",
    "crm_matched_by_name",
    "crm_unmatched",
    "crm_match_rate",
    "rx_prescribers_unknown_to_ama",
)


def _metrics(build: BuildContext, physicians: str, matches: str, accounts: str) -> dict:
    """Match statistics shown on the materialization (and the domain query), from the golden
    records (a table), the CRM matches and the CRM accounts (queries)."""
    row = build.con.execute(f"""
        select
          (select count(distinct crm_id) from ({accounts})) as crm_accounts,
          (select count(*) from ({matches}) where match_method = 'npi') as by_npi,
          (select count(*) from ({matches}) where match_method = 'name') as by_name,
          (select count(*) from {physicians} where record_source = 'rx_only') as rx_only
    """).fetchone()
    total, by_npi, by_name, rx_only = row
    matched = by_npi + by_name
    return {
        "crm_accounts": total,
        "crm_matched_by_npi": by_npi,
        "crm_matched_by_name": by_name,
        "crm_unmatched": total - matched,
        "crm_match_rate": round(matched / total, 4) if total else 0.0,
        "rx_prescribers_unknown_to_ama": rx_only,
    }
