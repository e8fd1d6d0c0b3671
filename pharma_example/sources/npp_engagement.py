"""``npp_engagement``: non-personal promotion (emails, web, radio), one file a day.

One row per campaign, channel and hashed recipient with activity that day: an email send (and
its opens, clicks and site visits), or web visits; radio has no recipient, so it is one row per
campaign and day (spots aired as ``sends``, site visits attributed to the spots, spend).
Recipients are physicians with an email on file and patients who opted in; their identity is a
SHA-256 hash, never a name. Emails go out weekly on a weekday of the recipient's own, so there
are rows every day of the week but fewer on weekends. One campaign starts and another ends inside
the default window.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

import numpy as np

from ..output import Landing, Source, pick
from ..people import ACTIVE, Roster
from ..products import PRODUCT_INFO
from ..streams import stream

SOURCE = Source(
    name="npp_engagement",
    cadence="daily",
    partition_format="%Y-%m-%d",
    columns=(
        "campaign_id",
        "campaign_name",
        "product",
        "channel",
        "audience",
        "recipient_hash",
        "activity_date",
        "sends",
        "opens",
        "clicks",
        "visits",
        "spend",
    ),
    description="Non-personal promotion engagement per campaign, channel and recipient, daily.",
)


class Campaign(NamedTuple):
    id: str
    name: str
    product: str
    audience: str  # hcp | consumer
    channels: tuple[str, ...]
    start: date
    end: date | None = None

    def runs_on(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


LAUNCH = PRODUCT_INFO["ZENVIRA"].launch
CAMPAIGNS = (
    Campaign("ZEN-HCP-LAUNCH", "ZENVIRA launch (HCP)", "ZENVIRA", "hcp", ("email", "web"), LAUNCH),
    Campaign(
        "ZEN-DTC-AWARE",
        "ZENVIRA awareness",
        "ZENVIRA",
        "consumer",
        ("email", "web", "radio"),
        LAUNCH,
    ),
    Campaign(
        "ZEN-HCP-ACCESS",
        "ZENVIRA formulary wins (HCP)",
        "ZENVIRA",
        "hcp",
        ("email",),
        date(2026, 10, 26),
    ),
    Campaign(
        "CDX-HCP-RETAIN",
        "CARDIOLEX retention (HCP)",
        "CARDIOLEX",
        "hcp",
        ("email",),
        date(2025, 1, 6),
        date(2026, 10, 24),
    ),
    Campaign(
        "CDX-DTC-ADHERE",
        "CARDIOLEX adherence",
        "CARDIOLEX",
        "consumer",
        ("radio",),
        date(2024, 1, 1),
    ),
)
FIRST_CAMPAIGN = min(c.start for c in CAMPAIGNS)  # every day from here has a radio row
CHANNELS = ("email", "web", "radio")
AUDIENCES = ("hcp", "consumer")
HCP_EMAIL_ON_FILE, CONSUMERS_PER_PHYSICIAN = 0.45, 0.6
OPEN_RATE = {"hcp": 0.22, "consumer": 0.17}
CLICK_RATE, VISIT_RATE = 0.15, 0.8
WEB_VISIT_CHANCE = {"hcp": 0.004, "consumer": 0.006}  # per recipient and day
COST_PER_SEND = {"hcp": 0.45, "consumer": 0.08}
COST_PER_VISIT = {"hcp": 1.10, "consumer": 0.60}
SPOT_COST = 380.0


class Audience(NamedTuple):
    key: np.ndarray  # NPI for physicians, a sequence number for patients
    name: str


def audiences(seed: int, roster: Roster) -> dict[str, Audience]:
    rng = stream(seed, SOURCE.name, "audience")
    active = np.flatnonzero(roster.status == ACTIVE)
    emails = active[rng.random(len(active)) < HCP_EMAIL_ON_FILE]
    consumers = np.arange(1, max(1, round(len(roster) * CONSUMERS_PER_PHYSICIAN)) + 1)
    return {"hcp": Audience(roster.npi[emails], "hcp"), "consumer": Audience(consumers, "consumer")}


def _rows(rng, day: date, c: int, campaign: Campaign, channel: str, aud: Audience) -> dict:
    n = len(aud.key)
    if channel == "radio":
        spots = max(1, int(rng.poisson(14 if day.weekday() < 5 else 8)))
        visits = rng.poisson(n * 0.0005 * spots / 14)
        return _columns(
            c, channel, aud, np.array([-1]), [spots], [0], [0], [visits], [spots * SPOT_COST]
        )
    if channel == "email":
        if day.weekday() >= 5:
            return {}
        who = np.flatnonzero((np.arange(n) + c) % 5 == day.weekday())
        m = len(who)
        opened = rng.random(m) < OPEN_RATE[aud.name]
        opens = opened * (1 + rng.poisson(0.3, m))
        clicks = rng.binomial(opened.astype(np.int64), CLICK_RATE)
        visits = rng.binomial(clicks, VISIT_RATE)
        spend = np.full(m, COST_PER_SEND[aud.name])
        return _columns(c, channel, aud, who, np.ones(m, np.int64), opens, clicks, visits, spend)
    who = np.flatnonzero(rng.random(n) < WEB_VISIT_CHANCE[aud.name])
    visits = 1 + rng.poisson(0.4, len(who))
    zeros = np.zeros(len(who), np.int64)
    return _columns(
        c, channel, aud, who, zeros, zeros, zeros, visits, visits * COST_PER_VISIT[aud.name]
    )


def _columns(c, channel, aud, who, sends, opens, clicks, visits, spend) -> dict:
    who = np.asarray(who)
    return {
        "campaign": np.full(len(who), c),
        "channel": np.full(len(who), CHANNELS.index(channel)),
        "audience": np.full(len(who), AUDIENCES.index(aud.name)),
        "recipient": np.where(who >= 0, aud.key[np.maximum(who, 0)], -1) if len(aud.key) else who,
        "sends": np.asarray(sends, np.int64),
        "opens": np.asarray(opens, np.int64),
        "clicks": np.asarray(clicks, np.int64),
        "visits": np.asarray(visits, np.int64),
        "spend_cents": np.round(np.asarray(spend, float) * 100).astype(np.int64),
    }


def write(out: Landing, seed: int, roster: Roster, days: list[date]) -> None:
    audience = audiences(seed, roster)
    for day in days:
        rng = stream(seed, SOURCE.name, day.toordinal())
        parts = [
            _rows(rng, day, c, campaign, channel, audience[campaign.audience])
            for c, campaign in enumerate(CAMPAIGNS)
            if campaign.runs_on(day)
            for channel in campaign.channels
        ]
        parts = [p for p in parts if p]
        columns = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        audience_sql = pick(AUDIENCES, "audience")
        select = f"""
            select {pick([c.id for c in CAMPAIGNS], "campaign")} as campaign_id,
                   {pick([c.name for c in CAMPAIGNS], "campaign")} as campaign_name,
                   {pick([c.product for c in CAMPAIGNS], "campaign")} as product,
                   {pick(CHANNELS, "channel")} as channel,
                   {audience_sql} as audience,
                   case when recipient >= 0 then sha256({audience_sql} || ':{int(seed)}:'
                       || recipient::varchar) end as recipient_hash,
                   date '{day.isoformat()}' as activity_date,
                   sends, opens, clicks, visits,
                   (spend_cents::decimal(14, 2) / 100)::decimal(12, 2) as spend
            from t
        """
        out.write(SOURCE, day, columns, select)
