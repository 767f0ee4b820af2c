"""Claims: created from answers, given reviewers, voted on, decided, evidenced.

Every verb here takes models and plain values, changes what it must through
``workflows.claims.transition`` (the only writer of a claim's state, but for a new
claim: see ``create_claims``) and records an audit event for everything else it
does (assignments, votes, conflicts, evidence). Functions flush; the caller commits.

Every verb that changes a claim or its reviews first takes the claim's lock
(``lock_claims``) and only then checks what it may do, on the claim as it stands.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterable

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import selectinload

from survey.accounts.models import User
from survey.audiences.models import ERASED, Stakeholder
from survey.audit.chain import record
from survey.campaigns.models import Campaign, Response
from survey.claims.models import OUTCOME_TYPES, Claim, Conflict, Evidence, Review
from survey.core.errors import InvalidState, NotFound, PermissionDenied, ValidationFailed
from survey.core.tokens import derive_token, hash_token
from survey.core.types import utcnow
from survey.extensions import db
from survey.web import LABELS
from workflows.claims import OPEN, check, record_transition, transition
from workflows.policy import Policy

#: the reviewers a claim needs
REVIEWER_ROLE = "committee"
#: answers copied into a claim's details when the questionnaire asks them
DETAIL_QUESTIONS = ("employer", "role", "business_name", "start_date", "salary_change", "comment")


class NoReviewerAvailable(InvalidState):
    """Not enough committee members may review this claim (conflicts, exclusions)."""


def claim_token(nonce: str) -> str:
    """The secret of a claim's evidence link (/e/<token>), derived like survey links."""
    return derive_token(current_app.config["SECRET_KEY"], "claim-evidence", nonce)


# ---------------------------------------------------------------------- creation

def claimed_outcomes(definition: dict, answers: dict) -> list[str]:
    """The outcome types the answers claim: options marked ``claim`` that were chosen."""
    claimed = []
    for question in definition.get("questions", []):
        chosen = answers.get(question["id"])
        chosen = chosen if isinstance(chosen, list) else [chosen]
        for option in question.get("options", []):
            outcome = option.get("claim")
            if outcome in OUTCOME_TYPES and option["value"] in chosen and outcome not in claimed:
                claimed.append(outcome)
    return claimed


def create_claims(response: Response, stakeholder_id: int) -> list[int]:
    """One claim per claimed outcome of a submitted identified response, with its
    evidence from the form, and its reviewers; the new claims' ids.

    This runs in every respondent's submit, and nothing in that request reads the new
    rows back: each claim is one INSERT, written already in review, and its reviews one
    more, with no objects for the session to track and flush (those took a third of a
    submission's time in bench/submissions.py). Its audit events are those of a claim
    created submitted, then moved to review, which ``workflows.claims.check`` allows.
    """
    check("submitted", "in_review")
    definition = db.session.get(Campaign, response.campaign_id).questionnaire.definition
    answers = response.answers or {}
    outcomes = claimed_outcomes(definition, answers)
    if not outcomes:
        return []
    details = {key: answers[key] for key in DETAIL_QUESTIONS if answers.get(key) not in (None, "", [])}
    attribution = answers.get("attribution")
    stored_file = answers["evidence_file"] if isinstance(answers.get("evidence_file"), dict) else None
    link, unusable = _evidence_link(answers.get("evidence_link"))
    if unusable:  # not a web address: the committee still reads it, with the other details
        details["evidence_link"] = unusable
    claimant = db.session.get(Stakeholder, stakeholder_id)  # the page read them: no query
    members = db.session.execute(_COMMITTEE_ROWS, {"stakeholder_id": stakeholder_id}).all()
    wanted = current_app.config["REVIEWERS_PER_CLAIM"]
    created = []
    for outcome in outcomes:
        nonce = secrets.token_hex(16)
        claim_id = db.session.execute(_NEW_CLAIM, {
            "response_id": response.id, "campaign_id": response.campaign_id, "stakeholder_id": stakeholder_id,
            "outcome_type": outcome, "details": details, "state": "in_review",
            "attribution": attribution if isinstance(attribution, int) else None,
            "token_nonce": nonce, "token_hash": hash_token(claim_token(nonce))}).scalar_one()
        subject = f"claim:{claim_id}"
        record("claim_created", subject, actor="respondent", to_state="submitted",
               data={"outcome_type": outcome, "response": str(response.id)})
        if stored_file or link:
            claim = db.session.get(Claim, claim_id)  # nobody else sees it yet: no lock
            if stored_file:
                _add_file_evidence(claim, stored_file, actor="respondent")
            if link:
                _add_link_evidence(claim, str(link), actor="respondent")
        record_transition(subject, "submitted", "in_review", actor="system")
        reviewers = [member.id for member in _least_loaded(members, claimant)[:wanted]]
        if reviewers:
            db.session.execute(_NEW_REVIEWS, [{"claim_id": claim_id, "reviewer_id": user_id} for user_id in reviewers])
        for user_id in reviewers:
            record("assignment", subject, actor="system", data={"reviewer": user_id})
            _loaded(user_id)
        _warn_if_short(claim_id, len(reviewers), wanted)
        created.append(claim_id)
    return created


# Core statements on the tables, built once: a new claim and its reviews are rows the
# request never reads back (see create_claims). The columns' defaults still apply.
#: what people type for a web address without its scheme: a domain, then perhaps a path
_BARE_ADDRESS = re.compile(r"^(?:www\.)?[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}(?:[/?#]\S*)?$", re.IGNORECASE)


def _evidence_link(text) -> tuple[str | None, str | None]:
    """(link, text that is no link) from the survey's free-text "link to evidence" answer.
    People type "linkedin.com/in/ada" as often as "https://…": that is given its https://.
    Anything else is kept as words, never a reason to refuse the whole answer (the survey
    question is free text, and refusing at this point lost every answer of the page)."""
    text = str(text or "").strip()
    if not text:
        return None, None
    if _BARE_ADDRESS.match(text):
        text = "https://" + text
    if text.lower().startswith(("https://", "http://")) and len(text) <= 2000 and not any(c.isspace() for c in text):
        return text, None
    return None, text[:2000]


_NEW_CLAIM = Claim.__table__.insert().returning(Claim.__table__.c.id)
_NEW_REVIEWS = Review.__table__.insert()


# ---------------------------------------------------------------------- locks

#: where a session keeps which claims its current transaction has locked
_LOCKED = "attest_claims_locked"


def lock_claims(*claims: Claim) -> None:
    """Hold these claims' rows until the transaction ends, and read them and their
    reviews again as they now stand.

    Two requests on one claim at once (the last two votes, a vote and the chair's
    decision) would otherwise each decide from what they read before the other
    committed: a claim left in review with all its approvals, or decided twice. With
    the lock, the second waits for the first to commit, then sees its vote or decision
    and is refused by name, as it would be a minute later. Every verb that changes a
    claim or its reviews takes it first (its checks come after); rows are locked in id
    order, so that two verbs locking several claims at once cannot deadlock.

    PostgreSQL: SELECT … FOR UPDATE. SQLite has no row locks: its one write lock is
    taken at once (a write that changes nothing), which a SELECT would not take, so a
    second writer waits there too rather than deciding from what it read before.
    A claim already locked in this transaction (or savepoint) is not read again."""
    db.session.flush()  # what this transaction changed is written before it is read back
    held, ids = db.session.info.get(_LOCKED, (None, set()))
    if held is None or held is not _innermost_transaction():
        ids = set()
    wanted = sorted({claim.id for claim in claims} - ids)
    if not wanted:
        return
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(update(Claim.__table__).where(Claim.__table__.c.id.in_(wanted))
                           .values(state=Claim.__table__.c.state))
    db.session.scalars(
        select(Claim).where(Claim.id.in_(wanted)).order_by(Claim.id).with_for_update(of=Claim)
        .options(selectinload(Claim.reviews)).execution_options(populate_existing=True)
    ).all()
    db.session.info[_LOCKED] = (_innermost_transaction(), ids | set(wanted))


def _innermost_transaction():
    """The savepoint or transaction in progress: the locks taken in it last as long as it."""
    session = db.session()  # the scoped session's own: its proxy does not offer these
    return session.get_nested_transaction() or session.get_transaction()


def lock_claim(claim: Claim) -> Claim:
    """``lock_claims`` for one claim; returns it."""
    lock_claims(claim)
    return claim


# ---------------------------------------------------------------------- assignment

def _exclusion_rules() -> list[tuple[str, str | None]]:
    """REVIEWER_EXCLUSIONS → [(claimant attribute, user field or None for the same attribute)]."""
    rules = []
    for item in (current_app.config["REVIEWER_EXCLUSIONS"] or "").split(","):
        item = item.strip()
        if item:
            attribute, _eq, field = item.partition("=")
            rules.append((attribute.strip(), field.strip() or None))
    return rules


def excluded(user: User, claimant: Stakeholder) -> str | None:
    """Why ``user`` may not review a claim of ``claimant``, or None."""
    if user.email.lower() == claimant.email.lower():
        return "the reviewer is the claimant"
    for attribute, field in _exclusion_rules():
        theirs = (claimant.attributes or {}).get(attribute)
        if theirs in (None, ""):
            continue
        if field == "email":
            mine = user.email
        elif field:
            mine = (user.attributes or {}).get(field)
        else:
            mine = (user.attributes or {}).get(attribute)
        if mine not in (None, "") and str(mine).strip().lower() == str(theirs).strip().lower():
            return f"exclusion rule: {attribute}"
    return None


def _committee_without_conflict(*columns):
    """The statement reading ``columns`` of the active committee members who declared
    no conflict with the person ``stakeholder_id`` (a parameter)."""
    conflicted = select(Conflict.user_id).where(Conflict.stakeholder_id == bindparam("stakeholder_id"))
    return select(*columns).where(User.role == REVIEWER_ROLE, User.active.is_(True), User.id.not_in(conflicted))


# built once: a new claim reads the committee as rows, a reassignment as users
_COMMITTEE_ROWS = _committee_without_conflict(User.id, User.email, User.attributes)
_COMMITTEE = _committee_without_conflict(User)


def _least_loaded(members: list, claimant: Stakeholder) -> list:
    """``members`` (users, or rows with their id, email and attributes) whom no exclusion
    rule keeps from this claimant's claims, least loaded first."""
    if not members:
        return []
    load = reviewer_load()
    members = sorted(members, key=lambda user: (load.get(user.id, 0), user.id))
    return [user for user in members if excluded(user, claimant) is None]


def eligible_reviewers(claim: Claim) -> list[User]:
    """Committee members who may review this claim, least loaded first."""
    already = {review.reviewer_id for review in claim.reviews}
    members = db.session.scalars(_COMMITTEE, {"stakeholder_id": claim.stakeholder_id}).all()
    return _least_loaded([user for user in members if user.id not in already], claim.claimant)


# Each member's open reviews (active, not voted, on a claim still open), as this process
# last counted them. Counting is a scan of the committee's whole backlog: done at every
# submission, it took longer as the backlog grew (10 ms per answer at a few hundred open
# claims in bench/submissions.py). So a process counts again only after
# REVIEWER_LOAD_SECONDS, adds the reviews it assigns itself in between, and counts again
# at once after anything of its own that lowers a load (a vote, a decision, a conflict, a
# reassignment). Other processes' assignments show at the next count: the balance is
# exact within one process, and within REVIEWER_LOAD_SECONDS' worth of assignments
# between several.
_LOAD = "attest.reviewer_load"


def reviewer_load() -> dict[int, int]:
    """Open reviews per committee member (see above)."""
    state = current_app.extensions.setdefault(_LOAD, {"counted_at": None, "counts": {}})
    now = time.monotonic()
    if state["counted_at"] is None or now - state["counted_at"] >= current_app.config["REVIEWER_LOAD_SECONDS"]:
        state["counts"] = dict(db.session.execute(
            select(Review.reviewer_id, func.count(Review.id))
            .join(Claim, Claim.id == Review.claim_id)
            .where(Review.active.is_(True), Review.verdict.is_(None), Claim.state.in_(tuple(OPEN)))
            .group_by(Review.reviewer_id)
        ).all())
        state["counted_at"] = now
    return state["counts"]


def forget_reviewer_load() -> None:
    """Count again at the next assignment: a load went down (or the data went away)."""
    current_app.extensions.pop(_LOAD, None)


def _loaded(user_id: int) -> None:
    """One more open review for ``user_id`` in this process's count (not a new count: that
    would see the review too, once flushed)."""
    state = current_app.extensions.get(_LOAD)
    if state is not None:
        state["counts"][user_id] = state["counts"].get(user_id, 0) + 1


def assign_reviewers(claim: Claim, count: int | None = None, *, actor="system") -> list[Review]:
    """Give the claim reviewers until it has ``count`` active ones (REVIEWERS_PER_CLAIM)."""
    lock_claim(claim)
    wanted = count or current_app.config["REVIEWERS_PER_CLAIM"]
    active = sum(1 for review in claim.reviews if review.active)
    added = []
    for user in eligible_reviewers(claim)[: max(wanted - active, 0)]:
        review = Review(claim=claim, reviewer_id=user.id, round=_round(claim))
        db.session.add(review)
        record("assignment", f"claim:{claim.id}", actor=actor, data={"reviewer": user.id})
        _loaded(user.id)
        added.append(review)
    db.session.flush()  # the new reviews in one INSERT
    _warn_if_short(claim.id, active + len(added), wanted)
    return added


def _warn_if_short(claim_id: int, reviewers: int, wanted: int) -> None:
    if reviewers < wanted:
        current_app.logger.warning("claim %s has %s of %s reviewers", claim_id, reviewers, wanted)


def _round(claim: Claim) -> int:
    return max((review.round for review in claim.reviews), default=1)


def _require_chair(user: User) -> None:
    """The chair's powers are checked here too, not only by the views that call them."""
    if getattr(user, "role", None) != "chair" or not user.active:
        raise PermissionDenied(_l("Only the committee chair may do this."))


def chair_excluded(chair: User, claim: Claim):
    """Why ``chair`` may not decide, revoke or reassign ``claim`` (a message), or None:
    what keeps a member from reviewing a claim keeps the chair from settling it (their
    own claim, a declared conflict with the claimant, an exclusion rule)."""
    claimant = claim.claimant
    if chair.email.lower() == claimant.email.lower():
        return _l("This claim is your own: you may not decide, revoke or reassign it.")
    conflict = db.session.scalar(select(Conflict.id).where(Conflict.user_id == chair.id,
                                                           Conflict.stakeholder_id == claim.stakeholder_id))
    if conflict is not None or excluded(chair, claimant) is not None:
        return _l("You may not decide, revoke or reassign this claim: you declared a conflict of interest "
                  "with this person, or an exclusion rule keeps you from their claims.")
    return None


def _require_chair_of(chair: User, claim: Claim) -> None:
    """The chair, not kept from this claim (``chair_excluded``); the claim is locked."""
    _require_chair(chair)
    lock_claim(claim)
    why = chair_excluded(chair, claim)
    if why is not None:
        raise PermissionDenied(why)


def reassign(claim: Claim, review: Review, *, chair: User, to: User | None = None) -> Review:
    """The chair takes a claim from one reviewer who has not voted on it and gives it to
    ``to`` (or the next eligible). A vote cast stays counted: the chair settles a claim
    by deciding it, never by taking a vote away."""
    _require_chair_of(chair, claim)
    if review.claim_id != claim.id or not review.active:
        raise InvalidState(_l("That reviewer is not reviewing this claim."))
    if claim.state not in OPEN:
        raise InvalidState(_l("Only a claim under review can be reassigned."))
    if review.verdict is not None:
        raise InvalidState(_l("That reviewer has already voted on this claim: a review with a vote cannot be "
                              "reassigned."))
    if to is not None:
        if to.role != REVIEWER_ROLE or not to.active:
            raise ValidationFailed(_l("Claims go to committee members only."))
        if to.id not in {u.id for u in eligible_reviewers(claim)}:
            raise ValidationFailed(_l("That member may not review this claim (claimant, conflict or exclusion)."))
    review.active = False
    record("unassignment", f"claim:{claim.id}", actor=chair, data={"reviewer": review.reviewer_id})
    forget_reviewer_load()
    db.session.flush()
    if to is not None:
        new = Review(claim=claim, reviewer_id=to.id, round=_round(claim))
        db.session.add(new)
        db.session.flush()
        record("assignment", f"claim:{claim.id}", actor=chair, data={"reviewer": to.id})
        return new
    added = assign_reviewers(claim, actor=chair)
    if not added:
        raise NoReviewerAvailable(_l("No other committee member may review this claim."))
    return added[0]


# ---------------------------------------------------------------------- votes and decisions

def kept_about(claim: Claim, text: str) -> str:
    """What a member or the chair writes about a claim, as it is kept: nothing once the
    claim's person was erased (privacy.erasure), since what people write about an erased
    person is not kept. The form still asks for it where it is required."""
    return "" if claim.claimant.erased else text.strip()


def record_vote(review: Review, verdict: str, comment: str, *, reviewer: User) -> None:
    """A reviewer's verdict on the claim's current evidence; then the policy decides."""
    claim = lock_claim(review.claim)
    if review.reviewer_id != reviewer.id or not review.active:
        raise NotFound(_l("This claim is not in your queue."))
    if claim.state != "in_review":
        raise InvalidState(_l("This claim is %(state)s: it takes no vote now.",
                              state=LABELS.get(claim.state, claim.state)))
    if review.verdict is not None:
        raise InvalidState(_l("You have already voted on this claim."))
    if verdict not in ("approve", "reject", "need_evidence", "abstain"):
        raise ValidationFailed(_l("Choose approve, reject, need evidence or abstain."), field="verdict")
    if verdict in ("reject", "need_evidence") and not comment.strip():
        raise ValidationFailed(_l("Say why, so the respondent and the chair can act on it."), field="comment")
    review.verdict, review.comment, review.voted_at = verdict, kept_about(claim, comment), utcnow()
    forget_reviewer_load()
    record("vote", f"claim:{claim.id}", actor=reviewer, reason=review.comment,
           data={"verdict": verdict, "review": review.id})
    db.session.flush()
    apply_policy(claim)


def apply_policy(claim: Claim) -> str | None:
    """Decide the claim if its active reviews' verdicts settle it under the policy."""
    lock_claim(claim)
    verdicts = [review.verdict for review in claim.reviews if review.active and review.round == _round(claim)]
    outcome = Policy.configured().outcome(verdicts)
    if outcome in ("proven", "rejected"):
        transition(claim, outcome, actor="policy", reason=f"committee votes: {', '.join(sorted(v for v in verdicts if v))}")
    elif outcome == "needs_evidence":
        request_evidence(claim)
    return outcome


def awaiting_chair(claim: Claim) -> bool:
    verdicts = [review.verdict for review in claim.reviews if review.active and review.round == _round(claim)]
    return claim.state == "in_review" and Policy.configured().outcome(verdicts) == "chair"


def declare_conflict(review: Review, reason: str, *, reviewer: User) -> None:
    """The reviewer steps aside: never assigned this claimant again; the claim is reassigned.

    The conflict is with the person, so the reviewer also steps aside from their other
    open claims (another outcome of the same answer, an answer to another campaign)."""
    claim = review.claim
    others = select(Review).join(Claim, Claim.id == Review.claim_id).where(
        Review.reviewer_id == reviewer.id, Review.active.is_(True), Review.id != review.id,
        Claim.stakeholder_id == claim.stakeholder_id, Claim.state.in_(tuple(OPEN))).order_by(Review.id)
    # All of them locked at once, in id order; then read again under the locks (a claim
    # of that person may have come or been decided meanwhile).
    lock_claims(claim, *(other.claim for other in db.session.scalars(others)))
    others = db.session.scalars(others).all()
    lock_claims(*(other.claim for other in others))  # only one that came meanwhile is not yet
    if review.reviewer_id != reviewer.id or not review.active:
        raise NotFound(_l("This claim is not in your queue."))
    if db.session.scalar(select(Conflict.id).where(Conflict.user_id == reviewer.id,
                                                   Conflict.stakeholder_id == claim.stakeholder_id)) is None:
        db.session.add(Conflict(user_id=reviewer.id, stakeholder_id=claim.stakeholder_id,
                                reason=kept_about(claim, reason)))
    now = utcnow()
    forget_reviewer_load()
    for stepped in (review, *others):
        stepped.active = False
        stepped.conflict_declared_at = now
        record("conflict", f"claim:{stepped.claim_id}", actor=reviewer, reason=kept_about(stepped.claim, reason),
               data={"review": stepped.id})
    db.session.flush()
    for stepped in (review, *others):
        if stepped.claim.state in OPEN:
            assign_reviewers(stepped.claim)
        if stepped.claim.state == "in_review":
            # With nobody to take the place, the votes already cast may be complete: the
            # policy decides now, or the claim would wait in review for a vote that never comes.
            apply_policy(stepped.claim)


def chair_decide(claim: Claim, to: str, reason: str, *, chair: User) -> None:
    """The chair settles a claim: proven, rejected or inconclusive, with a reason."""
    _require_chair_of(chair, claim)
    if to not in ("proven", "rejected", "inconclusive"):
        raise ValidationFailed(_l("Decide proven, rejected or inconclusive."), field="decision")
    if not reason.strip():
        raise ValidationFailed(_l("A decision by the chair needs a reason."), field="reason")
    transition(claim, to, actor=chair, reason=kept_about(claim, reason), decided_by=chair)
    forget_reviewer_load()


def revoke(claim: Claim, reason: str, *, chair: User) -> None:
    """The chair revokes a proven claim, with a reason."""
    _require_chair_of(chair, claim)
    written = reason.strip() and (kept_about(claim, reason) or ERASED)  # a revocation always has a reason
    transition(claim, "revoked", actor=chair, reason=written, decided_by=chair)


def bulk_decide(claims: Iterable[Claim], to: str, reason: str, *, chair: User) -> tuple[int, list[str]]:
    """Decide many claims at once; each is decided or refused on its own (in id order,
    the order of their locks)."""
    _require_chair(chair)
    done, refused = 0, []
    for claim in sorted(claims, key=lambda claim: claim.id):
        try:
            with db.session.begin_nested():
                chair_decide(claim, to, reason, chair=chair)
            done += 1
        except (InvalidState, ValidationFailed, PermissionDenied) as exc:
            refused.append(f"#{claim.id}: {exc.message}")
    return done, refused


def withdraw(claim: Claim) -> None:
    """The respondent withdraws their claim."""
    lock_claim(claim)
    transition(claim, "withdrawn", actor="respondent", reason="withdrawn by the respondent")
    forget_reviewer_load()


# ---------------------------------------------------------------------- evidence

def request_evidence(claim: Claim) -> None:
    """In review → needs evidence; the respondent is emailed a link to add it."""
    from survey.mail.models import OutboxMessage

    lock_claim(claim)
    reasons = [review.comment for review in claim.reviews
               if review.active and review.verdict == "need_evidence" and review.comment]
    transition(claim, "needs_evidence", actor="policy", reason=" / ".join(reasons))
    invitation_id = claim.response.invitation_id
    if invitation_id is not None:
        sequence = 1 + (db.session.scalar(
            select(func.max(OutboxMessage.sequence)).where(OutboxMessage.invitation_id == invitation_id,
                                                           OutboxMessage.kind == "evidence_request")) or 0)
        db.session.add(OutboxMessage(invitation_id=invitation_id, kind="evidence_request", sequence=sequence,
                                     claim_id=claim.id))
    db.session.flush()


def what_the_committee_asked(claim: Claim) -> str:
    """The reason given when the committee last asked for evidence (its members'
    requests, joined), never who asked nor how anyone voted."""
    from survey.audit.models import AuditEvent

    if claim.state != "needs_evidence":
        return ""
    event = db.session.scalar(
        select(AuditEvent)
        .where(AuditEvent.subject == f"claim:{claim.id}", AuditEvent.action == "transition",
               AuditEvent.to_state == "needs_evidence")
        .order_by(AuditEvent.id.desc()).limit(1)
    )
    return (event.written_reason or "") if event is not None else ""


def _content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _taking_evidence(claim: Claim) -> None:
    """A decided or withdrawn claim keeps the evidence it was decided on: no more."""
    if claim.state not in OPEN:
        raise InvalidState(_l("This claim is %(state)s: it takes no more evidence.",
                              state=LABELS.get(claim.state, claim.state)))


def _evidence_added(claim: Claim, evidence: Evidence, actor) -> Evidence:
    db.session.add(evidence)
    db.session.flush()
    record("evidence_added", f"claim:{claim.id}", actor=actor,
           data={"evidence": evidence.id, "kind": evidence.kind, "sha256": evidence.sha256})
    if claim.state == "needs_evidence":
        resume_review(claim)
    return evidence


def add_file_evidence(claim: Claim, stored: dict, *, actor) -> Evidence:
    """A file already checked and stored by ``respond.uploads.store_upload``."""
    return _add_file_evidence(lock_claim(claim), stored, actor=actor)


def _add_file_evidence(claim: Claim, stored: dict, *, actor) -> Evidence:
    _taking_evidence(claim)
    return _evidence_added(claim, Evidence(
        claim=claim, kind="file", source="document from the respondent", stored_as=stored["stored_as"],
        filename=stored.get("filename"), media_type=stored.get("media_type"), size=stored.get("size"),
        sha256=stored["sha256"]), actor)


def add_link_evidence(claim: Claim, url: str, *, actor) -> Evidence:
    return _add_link_evidence(lock_claim(claim), url, actor=actor)


def _add_link_evidence(claim: Claim, url: str, *, actor) -> Evidence:
    _taking_evidence(claim)
    url = url.strip()
    if not url.lower().startswith(("https://", "http://")) or len(url) > 2000:
        raise ValidationFailed(_l("Give a web address starting with https://."), field="url")
    return _evidence_added(claim, Evidence(claim=claim, kind="link", source="public link", url=url,
                                           sha256=_content_hash(url)), actor)


def add_contact_evidence(claim: Claim, contact: str, *, actor) -> Evidence:
    lock_claim(claim)
    _taking_evidence(claim)
    contact = contact.strip()
    if not contact or len(contact) > 1000:
        raise ValidationFailed(_l("Give the contact's name and an email or phone number."), field="contact")
    return _evidence_added(claim, Evidence(claim=claim, kind="contact", source="employer contact",
                                           contact=contact, sha256=_content_hash(contact)), actor)


def resume_review(claim: Claim) -> None:
    """New evidence: back to review, a new round in which the same reviewers vote again
    (their earlier verdicts stay in the audit trail)."""
    lock_claim(claim)
    transition(claim, "in_review", actor="respondent", reason="new evidence")
    forget_reviewer_load()
    new_round = _round(claim) + 1
    for review in claim.reviews:
        if review.active:
            review.verdict = review.voted_at = None
            review.comment = ""
            review.round = new_round
    db.session.flush()


def record_download(evidence: Evidence, *, user: User) -> None:
    record("evidence_downloaded", f"evidence:{evidence.id}", actor=user,
           data={"claim": evidence.claim_id, "sha256": evidence.sha256})


def find_claim_by_token(token: str) -> Claim | None:
    return db.session.scalar(select(Claim).where(Claim.token_hash == hash_token(token)))


def may_see_claim(user: User, claim: Claim) -> bool:
    """Whether ``user`` may read ``claim``: the rule is survey.core.authorisation's
    (chair and auditor see all; a member sees the claims assigned to them, even after
    voting, never one they declared a conflict on)."""
    from survey.core.authorisation import can

    return can(user, "view", claim)
