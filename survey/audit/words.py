"""The audit trail's codes in words, for the pages that show it (the trail, a claim's history).
The trail itself keeps the codes: they are what its hashes cover and what a search names."""
from __future__ import annotations

import re

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from survey.web import LABELS

#: every action ``audit.chain.record`` is given → words
ACTIONS = {
    "claim_created": _l("claim submitted"),
    "transition": _l("state changed"),
    "assignment": _l("reviewer assigned"),
    "unassignment": _l("reviewer removed"),
    "vote": _l("vote"),
    "conflict": _l("conflict declared"),
    "evidence_added": _l("evidence added"),
    "evidence_downloaded": _l("evidence downloaded"),
    "evidence_purged": _l("evidence removed (retention)"),
    "details_purged": _l("details removed (retention)"),
    "export": _l("export"),
    "publish": _l("report published"),
    "sample_drawn": _l("audit sample drawn"),
    "sample_checked": _l("sampled claim checked"),
    "person_export": _l("a person's data exported"),
    "erasure": _l("person erased"),
    "erasure_lifted": _l("erasure lifted"),
    "campaign_created": _l("campaign created"),
    "campaign_changed": _l("campaign changed"),
    "campaign_status": _l("campaign status changed"),
    "audience_import": _l("audience imported"),
    "user_deactivated": _l("user deactivated"),
    "user_reactivated": _l("user reactivated"),
    "user_role_changed": _l("user's role changed"),
    "user_attributes_changed": _l("user's attributes changed"),
    "api_key_created": _l("API key created"),
    "api_key_revoked": _l("API key revoked"),
}
#: actors that are not users → words
ACTORS = {"respondent": _l("the respondent"), "system": _l("the system"), "policy": _l("the committee policy"),
          "retention": _l("the retention policy")}


def action_words(action: str) -> str:
    return str(ACTIONS.get(action, action))


def actor_words(actor: str) -> str:
    """A user is "user:7" (the page adds their address), an API key "api-key:3"; the rest in words."""
    return str(ACTORS.get(actor, actor))


def state_words(state: str | None) -> str:
    return str(LABELS.get(state, state)) if state else "—"


#: the reasons the system writes (in English: they are part of what the chain hashes)
_VOTES = re.compile(r"^committee votes: ([a-z_, ]+)$")
SYSTEM_REASONS = {
    "withdrawn by the respondent": _l("withdrawn by the respondent"),
    "new evidence": _l("new evidence"),
}


def reason_words(reason: str | None) -> str:
    """A reason in the reader's language when the system wrote it ("committee votes:
    approve, approve"); one a person wrote, as they wrote it."""
    if not reason:
        return ""
    if (match := _VOTES.match(reason)) is not None:
        votes = [str(LABELS.get(vote.strip(), vote.strip())) for vote in match.group(1).split(",")]
        return _("committee votes: %(votes)s", votes=", ".join(votes))
    if reason.startswith("RETENTION_"):
        return _("retention setting %(setting)s", setting=reason)
    return str(SYSTEM_REASONS.get(reason, reason))


def system_wrote(reason: str) -> bool:
    """A reason in the system's own words (nothing a person wrote, nor quotes of it)."""
    return (reason in SYSTEM_REASONS or policy_wrote(reason) or reason.startswith("RETENTION_")
            or not reason)


def policy_wrote(reason: str) -> bool:
    """The committee policy's own words ("committee votes: approve, approve"); anything else
    it records quotes the members (their requests for evidence)."""
    return _VOTES.match(reason) is not None


def shown_reason(event, subject_erased: bool) -> str | None:
    """The reason an event's reader may see; None where it reads as erased: kept apart and
    deleted with the person, or written about an erased person's claim by a person or
    quoting one (in events older than reasons kept apart, whose text is in the chain)."""
    text = event.written_reason
    if text and subject_erased and (event.actor_id is not None or not system_wrote(text)):
        return None
    return text


def erased_words() -> str:
    return _("(removed: the person's data was erased)")
