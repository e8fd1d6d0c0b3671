"""The quirks that make downstream work real, source by source (small landing zone)."""

import re
from collections import Counter, defaultdict
from datetime import date, timedelta

from example_helpers import read_rows

from mesh_domains.platform.npi import is_valid_npi
from pharma_example.people import NICKNAMES
from pharma_example.products import NDC_CODES, PRODUCTS


def test_ama_npis_valid_unique_and_stable(landing):
    """Every AMA snapshot has valid, unique NPIs and 11-digit unique ME numbers, 5-digit zips
    (leading zeros kept), grows month on month, and never changes a physician's NPI."""
    snapshots = [read_rows(p) for p in landing[1].files["ama_physician"]]
    me_to_npi: dict[str, str] = {}
    for rows in snapshots:
        assert all(is_valid_npi(r["npi"]) for r in rows)
        assert len({r["npi"] for r in rows}) == len(rows)
        assert len({r["me_number"] for r in rows}) == len(rows)
        assert all(re.fullmatch(r"\d{11}", r["me_number"]) for r in rows)
        assert all(re.fullmatch(r"\d{5}", r["zip"]) for r in rows)
        for r in rows:
            assert me_to_npi.setdefault(r["me_number"], r["npi"]) == r["npi"]
    assert len(snapshots[0]) < len(snapshots[1]) < len(snapshots[2])
    assert any(r["zip"].startswith("0") for r in snapshots[-1])
    statuses = [r["status"] for r in snapshots[-1]]
    assert statuses.count("active") > 0.8 * len(statuses)


def test_crm_has_missing_wrong_npis_nicknames_and_one_insert_per_account(rows, ama_npis):
    """CRM inserts include blank NPIs, NPIs that match no AMA physician and nicknames; every
    account id is inserted exactly once; duplicates and several territories exist; every
    change is stamped on its file's day."""
    crm = rows["crm_accounts"]
    inserts = [r for r in crm if r["change_type"] == "insert"]
    assert {r["change_type"] for r in crm} == {"insert", "update"}
    assert len({r["crm_id"] for r in inserts}) == len(inserts)
    assert {r["crm_id"] for r in crm} == {r["crm_id"] for r in inserts}
    assert all(re.fullmatch(r"CRM\d{7}", r["crm_id"]) for r in crm)
    missing = [r for r in inserts if not r["npi"]]
    wrong = [r for r in inserts if r["npi"] and r["npi"] not in ama_npis]
    assert 0.05 < len(missing) / len(inserts) < 0.15
    assert 0.01 < len(wrong) / len(inserts) < 0.10
    assert any(not is_valid_npi(r["npi"]) for r in wrong)
    assert any(r["first_name"] in NICKNAMES.values() for r in inserts)
    keyed = [r["npi"] for r in inserts if r["npi"] in ama_npis]
    assert len(set(keyed)) < len(keyed)  # some physicians have two accounts
    assert len({r["territory"] for r in inserts}) >= 2


def test_crm_changes_fall_on_their_day(landing):
    for path in landing[1].files["crm_accounts"]:
        day = path.parent.name
        assert all(r["changed_at"].startswith(day + "T") for r in read_rows(path))


def test_rx_counts_flags_and_unknown_prescribers(rows, ama_npis):
    """Rx rows have 1 <= trx, 0 <= nrx <= trx, both actual and projected data, one row per
    (prescriber, product, week), only basket products and valid NPIs, some unknown to AMA."""
    rx = rows["rx_weekly"]
    assert all(0 <= int(r["nrx"]) <= int(r["trx"]) and int(r["trx"]) >= 1 for r in rx)
    assert {r["data_type"] for r in rx} == {"actual", "projected"}
    keys = [(r["prescriber_npi"], r["product"], r["week_ending"]) for r in rx]
    assert len(set(keys)) == len(keys)
    assert {r["product"] for r in rx} == set(PRODUCTS)
    prescribers = {r["prescriber_npi"] for r in rx}
    assert all(is_valid_npi(n) for n in prescribers)
    unknown = prescribers - ama_npis
    assert 0 < len(unknown) < 0.1 * len(prescribers)


def test_rx_rows_sit_in_their_week(landing):
    for path in landing[1].files["rx_weekly"]:
        assert {r["week_ending"] for r in read_rows(path)} == {path.parent.name}


def test_a_reversal_cancels_an_earlier_paid_claim(rows):
    """Every reversal names a paid claim delivered before or with it, repeats its values, and
    comes 1-10 days after the fill; no claim is reversed twice; some reversals land in a later
    week's file than the claim they cancel. Paid minus reversed co-pay nets to zero for them."""
    claims = rows["claims"]
    by_id = {r["claim_id"]: r for r in claims}
    reversals = [r for r in claims if r["status"] == "reversed"]
    assert reversals and len({r["reversal_of"] for r in reversals}) == len(reversals)
    later_week = 0
    for rev in reversals:
        original = by_id[rev["reversal_of"]]
        assert original["status"] == "paid" and not original["reversal_of"]
        same = ("patient_token", "prescriber_npi", "plan_id", "ndc", "fill_date", "copay")
        assert all(rev[k] == original[k] for k in same)
        filled, reversed_on = (
            date.fromisoformat(rev[k]) for k in ("fill_date", "transaction_date")
        )
        assert timedelta(days=1) <= reversed_on - filled <= timedelta(days=10)
        later_week += reversed_on > date.fromisoformat(original["transaction_date"]) + timedelta(
            days=(5 - date.fromisoformat(original["transaction_date"]).weekday()) % 7
        )
        assert float(original["copay"]) - float(rev["copay"]) == 0
    assert later_week > 0
    assert all(not r["reversal_of"] for r in claims if r["status"] != "reversed")


def test_claims_rejections_copay_and_proportions(rows):
    """Rejected claims carry an NCPDP reject code and no money; paid ones pay co-pay, and only
    commercial fills of Meridian's brands get co-pay card assistance; claims rows are of the
    order of Rx rows, and every claim's NDC is in the product master."""
    claims = rows["claims"]
    status = Counter(r["status"] for r in claims)
    assert status["paid"] > status["rejected"] > status["reversed"] > 0
    for r in claims:
        if r["status"] == "rejected":
            assert r["reject_code"] and float(r["copay"]) == float(r["copay_assist"]) == 0
        else:
            assert not r["reject_code"]
    assert {r["reject_code"] for r in claims} >= {"70", "75"}
    ndc_product = {r["ndc"]: r["product"] for r in rows["product_master"]}
    assert set(ndc_product) == set(NDC_CODES)
    channel = {r["plan_id"]: r["channel"] for r in rows["formulary"]}
    assisted = [r for r in claims if float(r["copay_assist"]) > 0]
    assert assisted
    assert all(ndc_product[r["ndc"]] in ("ZENVIRA", "CARDIOLEX") for r in assisted)
    assert all(channel[r["plan_id"]] == "commercial" for r in assisted)
    assert 0.3 < len(claims) / len(rows["rx_weekly"]) < 3


def test_formulary_changes_month_to_month(rows):
    """Each month lists every plan x product once; some listings change from one month to the
    next (tier, PA, step edit, quantity limit), most do not; all three channels are present."""
    months = defaultdict(dict)
    for r in rows["formulary"]:
        key = (r["plan_id"], r["product"])
        assert key not in months[r["effective_date"]]
        months[r["effective_date"]][key] = (
            r["tier"],
            r["prior_auth"],
            r["step_therapy"],
            r["quantity_limit"],
        )
    ordered = [months[m] for m in sorted(months)]
    changed = [sum(a[k] != b[k] for k in a) for a, b in zip(ordered, ordered[1:], strict=False)]
    assert len(ordered) == 3 and sum(changed) > 0
    assert all(c < 0.5 * len(ordered[0]) for c in changed)
    assert {r["channel"] for r in rows["formulary"]} == {
        "commercial",
        "medicare_part_d",
        "medicaid",
    }
    assert {r["coverage"] for r in rows["formulary"]} == {"covered", "not_covered"}


def test_rebate_terms_have_date_ranges_by_tier(landing):
    """Rebate terms are per payer, own product, channel and tier, with ordered date ranges that
    never overlap within one contract and tier in a quarter's file; rates fall with the tier
    (Medicaid: flat). Each file lists the terms overlapping its quarter."""
    for path in landing[1].files["rebates"]:
        quarter = date.fromisoformat(path.parent.name + "-01")
        terms = read_rows(path)
        assert {r["product"] for r in terms} == {"ZENVIRA", "CARDIOLEX"}
        ranges = defaultdict(list)
        for r in terms:
            start, end = (date.fromisoformat(r[k]) for k in ("effective_from", "effective_to"))
            assert start <= end and end >= quarter and start < quarter + timedelta(days=92)
            ranges[(r["contract_id"], r["tier"])].append((start, end))
        for spans in ranges.values():
            spans.sort()
            assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))
        for contract in {r["contract_id"] for r in terms if r["channel"] == "commercial"}:
            rate = {
                r["tier"]: float(r["rebate_rate"]) for r in terms if r["contract_id"] == contract
            }
            assert rate["1"] > rate["2"] > rate["3"]
        for contract in {r["contract_id"] for r in terms if r["channel"] == "medicaid"}:
            assert len({r["rebate_rate"] for r in terms if r["contract_id"] == contract}) >= 1


def test_quarterly_realignment(landing):
    """Each quarter's alignment maps every zip3 once, to a territory in one district and region;
    from one quarter to the next some zip3s move territory and the rep roster changes."""
    first, second = (read_rows(p) for p in landing[1].files["alignment"])
    for quarter in (first, second):
        assert len({r["zip3"] for r in quarter}) == len(quarter) > 800
        parent = {}
        for r in quarter:
            assert parent.setdefault(r["territory"], (r["district"], r["region"])) == (
                r["district"],
                r["region"],
            )
    before = {r["zip3"]: r for r in first}
    moved = [r for r in second if r["territory"] != before[r["zip3"]]["territory"]]
    assert 0 < len(moved) < 0.2 * len(second)
    reps = lambda q: {(r["territory"], r["rep_id"]) for r in q}  # noqa: E731
    assert reps(first) != reps(second)


def test_field_calls_reference_crm_accounts_some_unknown(rows):
    """Calls name reps of the alignment and CRM accounts, ~1.5% of which are in no CRM file;
    in-person ZENVIRA calls leave samples, virtual and phone calls none; weekdays are busy."""
    calls = rows["field_calls"]
    crm_ids = {r["crm_id"] for r in rows["crm_accounts"]}
    unknown = [c for c in calls if c["crm_id"] not in crm_ids]
    assert 0 < len(unknown) < 0.06 * len(calls)
    reps = {r["rep_id"] for r in rows["alignment"] if r["rep_id"]}
    assert {c["rep_id"] for c in calls} <= reps
    assert all(int(c["samples"]) == 0 for c in calls if c["channel"] != "in_person")
    assert any(int(c["samples"]) > 0 for c in calls)
    weekday = Counter(date.fromisoformat(c["call_date"]).weekday() < 5 for c in calls)
    assert weekday[True] > 10 * weekday[False]


def test_calls_are_a_few_per_target_a_month(tmp_path):
    """Targets (the biggest prescribers, at most 80 per rep) get two to four calls a month:
    over two weeks each called target account sees about one to two calls."""
    from pharma_example import generate_landing

    run = generate_landing(tmp_path, scale=0.5, days=14, weeks=1, months=1, quarters=1)
    calls = [r for p in run.files["field_calls"] for r in read_rows(p)]
    per_account = Counter(c["crm_id"] for c in calls)
    busy = [n for n in per_account.values() if n > 1]
    assert busy and max(per_account.values()) <= 6
    weekdays = 10
    per_target_month = len(calls) / len(per_account) * 21.7 / weekdays
    assert 1.0 < per_target_month < 4.5


def test_npp_engagement_hashed_recipients_and_campaign_dates(rows):
    """Emails and web visits name a SHA-256-shaped hashed recipient, radio none (one row per
    campaign and day); every day has rows; a campaign starts and another ends in the window;
    opens never fall below clicks."""
    npp = rows["npp_engagement"]
    for r in npp:
        if r["channel"] == "radio":
            assert r["recipient_hash"] == "" and int(r["sends"]) > 0
        else:
            assert re.fullmatch(r"[0-9a-f]{64}", r["recipient_hash"])
        assert int(r["opens"]) >= int(r["clicks"])
    days = {r["activity_date"] for r in npp}
    assert len(days) == 14
    span = defaultdict(set)
    for r in npp:
        span[r["campaign_id"]].add(r["activity_date"])
    assert min(span["ZEN-HCP-ACCESS"]) > min(days)
    assert max(span["CDX-HCP-RETAIN"]) < max(days)
    radio = Counter((r["activity_date"], r["campaign_id"]) for r in npp if r["channel"] == "radio")
    assert set(radio.values()) == {1} and {day for day, _ in radio} == days
    recipients = Counter(r["recipient_hash"] for r in npp if r["channel"] == "email")
    assert max(recipients.values()) > 1  # the same recipient gets several emails
