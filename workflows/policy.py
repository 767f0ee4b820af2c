"""The committee's decision policy: what a set of votes on a claim decides.

Default (configurable): two approvals and no rejection prove a claim; two
rejections reject it (unless two approvals split the vote); a completed set with
a need_evidence vote asks the respondent for more; any other completed set goes
to the chair.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app


@dataclass(frozen=True)
class Policy:
    approvals_to_prove: int = 2
    rejections_to_reject: int = 2

    @classmethod
    def configured(cls) -> "Policy":
        config = current_app.config
        return cls(config["POLICY_APPROVALS_TO_PROVE"], config["POLICY_REJECTIONS_TO_REJECT"])

    def outcome(self, verdicts: list[str | None]) -> str | None:
        """``proven``, ``rejected``, ``needs_evidence``, ``chair`` (the chair settles it),
        or None while votes are missing. ``verdicts`` has one entry per active review,
        None for a review not voted yet."""
        approvals = verdicts.count("approve")
        rejections = verdicts.count("reject")
        if approvals >= self.approvals_to_prove and rejections == 0:
            return "proven"
        if rejections >= self.rejections_to_reject and approvals < self.approvals_to_prove:
            return "rejected"
        if None in verdicts or not verdicts:
            return None  # a split may still be settled by the votes to come
        if "need_evidence" in verdicts:
            return "needs_evidence"
        return "chair"
