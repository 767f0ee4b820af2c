"""Where "next" may send someone: a path on this site, never another site."""
from __future__ import annotations

import pytest

from survey.core.redirects import safe_next
from tests.factories import csrf_token


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\t/evil.example", "/\n/evil.example",
                                    "/\\evil.example", "\\\\evil.example", "/\r\n/evil.example", "javascript:alert(1)",
                                    "evil.example", "", None])
def test_anything_but_a_path_here_is_refused(target):
    assert safe_next(target) is None


@pytest.mark.parametrize("target", ["/", "/reports/?campaign=3", "/s/abc#q-employer"])
def test_a_path_here_is_kept(target):
    assert safe_next(target) == target


def test_the_language_switch_cannot_send_anyone_elsewhere(client):
    """Found in review: every page's language form copies the page's path into "next", the
    404 page's too; "/%09/evil.example" came back as a redirect to //evil.example."""
    token = csrf_token(client, "/login")
    response = client.post("/language", data={"csrf_token": token, "lang": "fr", "next": "/\t/evil.example"})
    assert response.status_code == 302
    assert "evil.example" not in response.headers["Location"]
    kept = client.post("/language", data={"csrf_token": token, "lang": "en", "next": "/login?next=/reports/"})
    assert kept.headers["Location"].endswith("/login?next=/reports/")
