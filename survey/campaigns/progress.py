"""A campaign's progress: where its sending stands now (what the campaign page shows,
and what its script polls for while invitations go out), and its funnel over time: by
the end of each day, how many people had been sent their invitation, had opened it,
started and completed the survey; and the chart of it, drawn on the server as SVG."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from flask_babel import format_date, format_decimal, format_percent, ngettext
from flask_babel import gettext as _
from markupsafe import Markup, escape
from sqlalchemy import func, select

from survey.campaigns.models import Campaign, Invitation
from survey.campaigns.services import campaign_counts
from survey.core.types import utcnow
from survey.extensions import db

#: the funnel's stages: the invitation column that marks each, and how the chart draws it
STAGES = (
    ("sent", Invitation.sent_at, "#1d70b8", ""),
    ("opened", Invitation.opened_at, "#6f72af", "6 3"),
    ("started", Invitation.started_at, "#b58840", "2 3"),
    ("completed", Invitation.completed_at, "#00703c", ""),
)
#: the most days the chart shows (the last ones)
MAX_DAYS = 120
#: while a campaign has one of these statuses, its invitations may still go out: its page follows them
LIVE_STATUSES = ("scheduled", "sending")


def sending_progress(campaign: Campaign, counts: dict[str, int] | None = None) -> dict:
    """Where the campaign stands: its status, the counts (``COUNT_KEYS``; one aggregate
    query unless given), the percentage of invitations sent, and that said in a sentence
    in the reader's language. The campaign page and the JSON its script polls both show this."""
    counts = counts if counts is not None else campaign_counts(campaign.id)
    invited, sent = counts["invited"], counts["sent"]
    # a large audience is invited a chunk at a time while the first emails go out
    preparing = campaign.status == "sending" and campaign.invitations_made_at is None
    # rounded down: 100% only once every invitation is out (while inviting, some are not made yet)
    percent = sent * 100 // invited if invited else 0
    if preparing:
        percent = min(percent, 99)
    if preparing:
        text = ngettext("%(sent)s invitation sent; still inviting the audience (%(invited)s so far)",
                        "%(sent)s invitations sent; still inviting the audience (%(invited)s so far)", sent,
                        sent=format_decimal(sent), invited=format_decimal(invited))
    elif invited:
        text = ngettext("%(sent)s of %(invited)s invitation sent (%(percent)s)",
                        "%(sent)s of %(invited)s invitations sent (%(percent)s)", invited,
                        sent=format_decimal(sent), invited=format_decimal(invited),
                        percent=format_percent(percent / 100))
    else:
        text = _("No invitation sent yet.")
    return {"status": campaign.status, **counts, "percent": percent, "text": text, "preparing": preparing,
            "live": campaign.status in LIVE_STATUSES}


@dataclass(frozen=True)
class Day:
    day: date
    #: stage → people who had reached it by the end of the day
    totals: dict[str, int]


@dataclass(frozen=True)
class Tally:
    """A campaign's invitations counted in one pass: per status, and per day (UTC) of
    each stage of the funnel."""

    by_status: dict[str, int]
    #: stage → day → invitations that reached the stage that day
    per_day: dict[str, dict[date, int]]

    @property
    def counts(self) -> dict[str, int]:
        """The progress counts (``COUNT_KEYS``), as ``campaign_counts`` gives them."""
        reached = {name: sum(days.values()) for name, days in self.per_day.items()}
        return {"invited": sum(self.by_status.values()), "sent": reached["sent"],
                "failed": self.by_status.get("failed", 0) + self.by_status.get("bounced", 0),
                "queued": self.by_status.get("queued", 0), "opened": reached["opened"],
                "started": reached["started"], "completed": reached["completed"]}


def tally(campaign: Campaign) -> Tally:
    """One pass over the invitations, grouped by the day of each stage and the status
    together: people move through the stages on a few days, so the groups are few, and
    the campaign page reads a million invitations once instead of once for its counts,
    once for its funnel and once for its number of recipients."""
    days_of = [func.date(column) for _name, column, _colour, _dash in STAGES]
    by_status: dict[str, int] = {}
    per_day: dict[str, dict[date, int]] = {name: {} for name, *_rest in STAGES}
    for *stage_days, status, count in db.session.execute(
        select(*days_of, Invitation.status, func.count())
        .where(Invitation.campaign_id == campaign.id).group_by(*days_of, Invitation.status)
    ):
        by_status[status] = by_status.get(status, 0) + count
        for (name, *_rest), day in zip(STAGES, stage_days):
            if day is not None:
                day = _as_date(day)
                per_day[name][day] = per_day[name].get(day, 0) + count
    return Tally(by_status, per_day)


def funnel_by_day(campaign: Campaign, counted: Tally | None = None) -> list[Day]:
    """Cumulative counts per day (UTC) from the first invitation to today or the close;
    ``counted``: the campaign's tally, when the caller has it already."""
    per_day = (counted or tally(campaign)).per_day
    known = [day for counts in per_day.values() for day in counts]
    if not known:
        return []
    first = min(known)
    last = min(utcnow(), campaign.closes_at).date()
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    days, running = [], {name: 0 for name, *_ in STAGES}
    earlier = {name: sum(c for d, c in counts.items() if d < first) for name, counts in per_day.items()}
    for name in running:
        running[name] = earlier[name]
    current = first
    while current <= last:
        for name in running:
            running[name] += per_day[name].get(current, 0)
        days.append(Day(current, dict(running)))
        current += timedelta(days=1)
    return days


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def funnel_chart(days: list[Day], invited: int) -> Markup:
    """Four cumulative lines (sent, opened, started, completed) over the days, 0 to
    ``invited`` high; each line has its own dash pattern, so colour is not the only cue."""
    width, height, left, bottom, top = 640, 240, 44, 28, 12
    plot_w, plot_h = width - left - 160, height - bottom - top  # the legend's words: French ones are longer
    ceiling = max(invited, 1)
    span = max(len(days) - 1, 1)

    def x(index: int) -> float:
        return left + plot_w * index / span

    def y(count: int) -> float:
        return top + plot_h * (1 - count / ceiling)

    names = {"sent": _("Sent"), "opened": _("Opened"), "started": _("Started"), "completed": _("Completed")}
    last = days[-1].totals
    desc = _("From %(first)s to %(last)s: ", first=format_date(days[0].day), last=format_date(days[-1].day)) + \
        ", ".join(f"{names[name]} {last[name]}" for name, *_ in STAGES) + \
        _(" out of %(invited)d invited.", invited=invited)
    parts = [f'<svg class="chart funnel" viewBox="0 0 {width} {height}" role="img" '
             f'aria-labelledby="funnel-title funnel-desc" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="funnel-title">{escape(_("The funnel, day by day"))}</title>',
             f'<desc id="funnel-desc">{escape(desc)}</desc>']
    for fraction in (0, 0.5, 1):
        level = y(round(ceiling * fraction))
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{level:.1f}" y2="{level:.1f}" stroke="#e3e4e5"/>')
        parts.append(f'<text x="{left - 6}" y="{level + 4:.1f}" text-anchor="end" font-size="11" fill="#505a5f">'
                     f'{round(ceiling * fraction)}</text>')
    for index in sorted({0, len(days) - 1}):
        parts.append(f'<text x="{x(index):.1f}" y="{height - 8}" text-anchor="middle" font-size="11" '
                     f'fill="#505a5f">{escape(format_date(days[index].day, "short"))}</text>')
    for row, (name, _column, colour, dash) in enumerate(STAGES):
        points = " ".join(f"{x(i):.1f},{y(day.totals[name]):.1f}" for i, day in enumerate(days))
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<polyline class="stage-{name}" points="{points}" fill="none" stroke="{colour}" '
                     f'stroke-width="2.5"{dashes}/>')
        # A mark on each day (on the last only when there are many): on a campaign's first day
        # a line of one point is not drawn at all, and the chart looked empty.
        marked = range(len(days)) if len(days) <= 31 else [len(days) - 1]
        parts.extend(f'<circle class="stage-{name}" cx="{x(i):.1f}" cy="{y(days[i].totals[name]):.1f}" r="3.5" '
                     f'fill="{colour}"/>' for i in marked)
        legend_y = top + 14 + row * 18
        parts.append(f'<line x1="{left + plot_w + 12}" x2="{left + plot_w + 34}" y1="{legend_y - 4}" '
                     f'y2="{legend_y - 4}" stroke="{colour}" stroke-width="2.5"{dashes}/>')
        parts.append(f'<text x="{left + plot_w + 40}" y="{legend_y}" font-size="12" fill="#0b0c0c">'
                     f'{escape(names[name])} {last[name]}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
