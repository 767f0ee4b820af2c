"""Every model, imported in one place so Alembic and the shell see the whole schema."""
from survey.accounts.models import ApiKey, User  # noqa: F401
from survey.audiences.models import Stakeholder  # noqa: F401
from survey.audit.models import AuditEvent, AuditHead, AuditReason  # noqa: F401
from survey.campaigns.models import Campaign, Invitation, Response  # noqa: F401
from survey.claims.models import Claim, Conflict, Evidence, Review  # noqa: F401
from survey.mail.models import OutboxMessage  # noqa: F401
from survey.privacy.models import ErasedAddress  # noqa: F401
from survey.questionnaires.models import Questionnaire  # noqa: F401
from survey.reports.models import AuditSample, ReportSnapshot, SampleCheck, SnapshotClaim  # noqa: F401
