"""Outgoing email: the outbox table, rendering and the SMTP sender."""
