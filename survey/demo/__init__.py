"""The embedded demo: an admin, the built-in questionnaires and a small audience."""
