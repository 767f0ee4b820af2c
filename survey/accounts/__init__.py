"""Staff accounts (admin, committee, chair, auditor), login, API keys."""
