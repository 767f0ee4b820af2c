"""GET routes that act (a download the audit trail records) answer only to this site's pages.

A session cookie is sent with any top-level navigation (SameSite=Lax), so a link on
another site could make a logged-in member's browser download evidence or export a
report, and the trail would say they did. Browsers say where a request comes from
(``Sec-Fetch-Site``, all current ones): such a route refuses "cross-site" and
"same-site" (another subdomain), and takes this site's own pages and what the person
opened themselves ("none": typed, a bookmark). Without the header (an old browser, a
script) it answers as before.
"""
from __future__ import annotations

from functools import wraps

from flask import request
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import Forbidden

ACCEPTED = {"same-origin", "none"}


class CrossSite(Forbidden):
    description = _l("This download opens from this service's own pages only: open the page it is on, "
                     "then the download.")


def from_this_site(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ACCEPTED:
            raise CrossSite()
        return view(*args, **kwargs)

    return wrapped
