import pytest

from tests.conftest import IsolatedClient


@pytest.fixture
def client(app, app_ctx):
    """Requests as isolated as real ones (see tests/accounts/conftest.py)."""
    return IsolatedClient(app, app.response_class, use_cookies=False)


@pytest.fixture
def api_key(app_ctx):
    """A fresh API key (the plain text an integrator holds)."""
    from survey.accounts.services import create_api_key
    from survey.extensions import db

    _, plain = create_api_key("tests")
    db.session.commit()
    return plain


@pytest.fixture
def auth(api_key):
    return {"Authorization": f"Bearer {api_key}"}
