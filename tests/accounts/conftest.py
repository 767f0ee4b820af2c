"""Fixtures for the accounts and API tests.

The shared ``client`` fixture runs every request inside the test's own app context,
so ``flask.g`` (Flask-Login's cached user, Flask-WTF's CSRF token, Babel's locale)
and the database session carry over from one request to the next, which never
happens in production. Here each request gets a fresh app context, as it would
behind a real WSGI server.
"""
from __future__ import annotations

import pytest
from flask.testing import FlaskClient


class IsolatedClient(FlaskClient):
    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def client(app, app_ctx):
    """A test client whose requests are as isolated as real ones, reading pages in English."""
    client = IsolatedClient(app, app.response_class, use_cookies=True)
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client
