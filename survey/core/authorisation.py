"""Who may do what, on which object: the one place every staff page and API route asks.

Two layers, both here:

- ``POLICY``: for each (action, object kind), the roles that may ever do it. A logged-in
  user acts with their role; an API key acts with the role ``API`` (the integrator's
  scope: what the admin pages do to questionnaires, audiences, campaigns and reports),
  or ``API_READ`` for a read-only key (a dashboard reading figures changes nothing).
  Anyone else (an anonymous visitor) has no role and may do nothing here; the
  respondents' pages (``/s/``, ``/e/``, ``/u/``) and a published report (``/p/``) are
  reached by their unguessable token or slug, not through this table.
- ``OBJECT_RULES``: for some (action, kind), a further rule on the object itself, e.g.
  a committee member reads only the claims assigned to them and votes only on their own
  open review.

``can(actor, action, obj_or_kind)`` answers; ``allowed(action, kind)`` decorates a view
(anonymous: to the login page; a role not in the table: 403); ``require(action, obj)``
refuses an object inside a view with a 404, exactly as if it did not exist, so nobody
learns which ids are in use.
"""
from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.exceptions import Forbidden

import survey.accounts.access  # noqa: F401  (registers Flask-Login's user loader)
from survey.extensions import db

#: the roles an API key acts with: read and write, or read only
API, API_READ = "api", "api-read"

ADMIN, COMMITTEE, CHAIR, AUDITOR = "admin", "committee", "chair", "auditor"

#: (action, object kind) -> the roles that may do it. The auditor only ever reads.
POLICY: dict[tuple[str, str], frozenset[str]] = {
    key: frozenset(roles) for key, roles in {
        # questionnaires, audiences, campaigns: the admin pages and the integrator's API
        ("read", "questionnaire"): (ADMIN, API, API_READ),
        ("write", "questionnaire"): (ADMIN, API),
        ("read", "audience"): (ADMIN, API, API_READ),
        ("import", "audience"): (ADMIN, API),
        ("read", "campaign"): (ADMIN, API, API_READ),
        ("write", "campaign"): (ADMIN, API),
        ("schedule", "campaign"): (ADMIN, API),
        # the embedded mail catcher's inbox (every email sent, links included)
        ("read", "mail"): (ADMIN,),
        # the committee
        ("queue", "claim"): (COMMITTEE, CHAIR, AUDITOR),  # chair and auditor are sent on to the list
        ("list", "claim"): (CHAIR, AUDITOR),
        ("view", "claim"): (COMMITTEE, CHAIR, AUDITOR),
        ("vote", "claim"): (COMMITTEE,),
        ("declare_conflict", "claim"): (COMMITTEE,),
        ("decide", "claim"): (CHAIR,),
        ("revoke", "claim"): (CHAIR,),
        ("reassign", "claim"): (CHAIR,),
        ("download", "evidence"): (COMMITTEE, CHAIR, AUDITOR),
        # the audit trail
        ("read", "audit"): (AUDITOR, CHAIR),
        # the impact report
        ("read", "report"): (ADMIN, CHAIR, AUDITOR, API, API_READ),
        ("export", "report"): (ADMIN, CHAIR, AUDITOR, API, API_READ),
        ("publish", "report"): (CHAIR,),
        ("trace", "report"): (CHAIR, AUDITOR),
        ("read", "sample"): (CHAIR, AUDITOR),
        ("draw", "sample"): (AUDITOR,),
        ("check", "sample"): (AUDITOR,),
    }.items()
}

#: the kind of each model class an object-level check is asked about
KINDS = {"Claim": "claim", "Evidence": "evidence", "Campaign": "campaign", "Questionnaire": "questionnaire",
         "Stakeholder": "audience", "ReportSnapshot": "report", "AuditSample": "sample", "SampleCheck": "sample"}


class UnknownAction(LookupError):
    """An (action, kind) the table does not name: a mistake in the code, never a user's."""


def role_of(actor) -> str | None:
    """The role ``actor`` acts with: a user's role, ``API`` or ``API_READ`` for an API key, None
    for anyone else."""
    from survey.accounts.models import ApiKey, User

    actor = _real(actor)
    if isinstance(actor, ApiKey):
        if actor.revoked_at is not None:
            return None
        return API_READ if actor.read_only else API
    if isinstance(actor, User):
        return actor.role if actor.active else None
    return None  # anonymous


def kind_of(obj) -> str:
    if isinstance(obj, str):
        return obj
    try:
        return KINDS[type(obj).__name__]
    except KeyError:
        raise UnknownAction(f"no object kind for {type(obj).__name__}") from None


def roles_for(action: str, kind: str) -> frozenset[str]:
    try:
        return POLICY[(action, kind)]
    except KeyError:
        raise UnknownAction(f"no policy for ({action!r}, {kind!r})") from None


# ---------------------------------------------------------------------- object rules

def _assigned(actor, claim) -> bool:
    """A member reads the claims assigned to them (even after voting, even when since
    reassigned), never one they declared a conflict on."""
    from survey.claims.models import Review

    return db.session.scalar(select(Review.id).where(
        Review.claim_id == claim.id, Review.reviewer_id == actor.id, Review.conflict_declared_at.is_(None),
    ).limit(1)) is not None


def _reviewing(actor, claim) -> bool:
    """A member votes and declares a conflict only through their own active review."""
    from survey.claims.models import Review

    return db.session.scalar(select(Review.id).where(
        Review.claim_id == claim.id, Review.reviewer_id == actor.id, Review.active.is_(True),
        Review.conflict_declared_at.is_(None),
    ).limit(1)) is not None


def _claim_view(actor, role, claim) -> bool:
    return role in (CHAIR, AUDITOR) or (role == COMMITTEE and _assigned(actor, claim))


#: (action, kind) -> rule(actor, role, obj): a further condition on the object itself
OBJECT_RULES = {
    ("view", "claim"): _claim_view,
    ("vote", "claim"): lambda actor, role, claim: _reviewing(actor, claim),
    ("declare_conflict", "claim"): lambda actor, role, claim: _reviewing(actor, claim),
    ("download", "evidence"): lambda actor, role, item: _claim_view(actor, role, item.claim),
}


# ---------------------------------------------------------------------- the questions

def can(actor, action: str, obj=None) -> bool:
    """Whether ``actor`` (a user, an API key, or anonymous) may do ``action`` on ``obj``,
    an object or, for what has no single object (lists, creating), its kind's name."""
    if obj is None:
        raise UnknownAction(f"can({action!r}) needs an object or a kind")
    kind = kind_of(obj)
    allowed_roles = roles_for(action, kind)
    role = role_of(actor)
    if role is None or role not in allowed_roles:
        return False
    rule = OBJECT_RULES.get((action, kind))
    if rule is None or isinstance(obj, str):
        return True
    if role in (API, API_READ):
        return True
    return bool(rule(_real(actor), role, obj))


def _real(actor):
    return actor._get_current_object() if hasattr(actor, "_get_current_object") else actor


def require(action: str, obj, actor=None):
    """``obj`` if the actor (default: the logged-in user) may do ``action`` on it; else 404
    (an object one may not see is answered exactly like one that does not exist).
    ``None`` (not found) is a 404 too."""
    actor = current_user if actor is None else actor
    if obj is None or not can(actor, action, obj):
        abort(404)
    return obj


class RoleRefused(Forbidden):
    """A staff page the user's role may not open; the error page names the roles that may."""

    def __init__(self, roles: frozenset[str], role: str | None):
        super().__init__()
        self.roles, self.role = sorted(roles), role


def allowed(action: str, kind: str):
    """A staff view: logged in (else the login page), and a role the table allows (else 403).
    Which object is then the view's business, through ``require``."""
    roles_for(action, kind)  # an unknown (action, kind) fails at import, not at the first request

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not can(current_user, action, kind):
                raise RoleRefused(roles_for(action, kind) - {API, API_READ}, role_of(current_user))
            return view(*args, **kwargs)

        wrapped.permission = (action, kind)
        return wrapped

    return decorator


def template_can(action: str, obj) -> bool:
    """``can`` for the logged-in user, for templates (``{% if may('publish', 'report') %}``)."""
    return can(current_user, action, obj)
