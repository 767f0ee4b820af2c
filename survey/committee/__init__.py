"""The committee's side: a member's review queue, the chair's and the auditor's list of
claims, the claim page with its evidence and votes, and the evidence downloads."""
