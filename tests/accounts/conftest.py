"""Fixtures for the accounts and API tests.

The shared ``client`` fixture runs every request inside the test's own app context,
so ``flask.g`` (Flask-Login's cached user, Flask-WTF's CSRF token, Babel's locale)
and the database session carry over from one request to the next, which never
happens in production. Here each request gets a fresh app context, as it would
behind a real WSGI server.
"""
from __future__ import annotations

import pytest


@pytest.fixture
def client(english_client):
    """A test client whose requests are as isolated as real ones, reading pages in English."""
    return english_client
