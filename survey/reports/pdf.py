"""The impact report as a PDF (for the annual report), made with WeasyPrint.

WeasyPrint fetches whatever a page links to: stylesheets, images, fonts. A report
holds text from imported files and questionnaires, and the PDF is made on the
server, so the fetcher here never goes to the network: it serves only the files of
the application's own static folders, read from disk, and data: URLs; every other
address (http:, https: elsewhere, file: outside those folders) is refused, and
WeasyPrint leaves that resource out with a warning in the log.
"""
from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname

from flask import current_app
from flask_babel import gettext as _
from weasyprint import CSS, HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse
from werkzeug.security import safe_join

SURVEY = Path(__file__).resolve().parent.parent
#: the only folders the PDF may read from: the application's and the report's static files
STATIC_FOLDERS = (SURVEY / "static", SURVEY / "reports" / "static")
REPORT_CSS = SURVEY / "reports" / "static" / "report.css"


class RefusedURL(ValueError):
    """An address the PDF may not read (WeasyPrint logs it and leaves the resource out)."""


class StaticFilesOnly(URLFetcher):
    """Serves data: URLs and the files of ``STATIC_FOLDERS``, asked for as file: URLs or by
    their address on this site (``origin`` + a static route); refuses everything else."""

    def __init__(self, origin: str, routes: dict[str, Path]):
        super().__init__(timeout=1, allowed_protocols=("data",), allow_redirects=False)
        self.origin = origin.rstrip("/")
        #: URL path prefix ("/static/") → folder
        self.routes = routes

    def fetch(self, url, headers=None):
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "data":
            # Decoded by urllib's data: handler, in memory (allowed_protocols stops any other).
            return super().fetch(url, headers)
        path = self.local_path(url)
        if path is None:
            raise RefusedURL(f"not an application static file: {url}")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(path.as_uri(), path.read_bytes(), headers={"Content-Type": content_type})

    def local_path(self, url: str) -> Path | None:
        """The file ``url`` names inside one of the static folders, or None."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                return None
            return _inside(Path(url2pathname(parts.path)), STATIC_FOLDERS)
        if scheme in ("http", "https") and f"{scheme}://{parts.netloc}".lower() == self.origin.lower():
            for prefix, folder in self.routes.items():
                if parts.path.startswith(prefix):
                    # safe_join refuses "..", absolute parts and the like
                    joined = safe_join(str(folder), unquote(parts.path[len(prefix):]))
                    return _inside(Path(joined), (folder,)) if joined else None
        return None


def _inside(path: Path, folders) -> Path | None:
    """``path`` if it is an existing file inside one of ``folders`` once symlinks are resolved."""
    resolved = path.resolve()
    for folder in folders:
        if resolved.is_relative_to(folder.resolve()) and resolved.is_file():
            return resolved
    return None


def static_routes(app) -> dict[str, Path]:
    """URL prefix → folder of the app's static routes that serve one of STATIC_FOLDERS
    (the app's /static/ and the reports blueprint's, wherever they are mounted)."""
    allowed = {folder.resolve() for folder in STATIC_FOLDERS}
    routes: dict[str, Path] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            folder = app.static_folder
        elif rule.endpoint.endswith(".static") and rule.endpoint[:-7] in app.blueprints:
            folder = app.blueprints[rule.endpoint[:-7]].static_folder
        else:
            continue
        if folder and Path(folder).resolve() in allowed:
            routes[rule.rule.split("<", 1)[0]] = Path(folder).resolve()
    return routes


def fetcher_for(app) -> StaticFilesOnly:
    """The fetcher for ``app``: its BASE_URL is the only origin whose static files it serves."""
    base = urlsplit(app.config["BASE_URL"])
    return StaticFilesOnly(f"{base.scheme}://{base.netloc}", static_routes(app))


def render_pdf(html: str) -> bytes:
    """The PDF of a full HTML page (the report's print template). Needs an app context.

    Relative links (``url_for(...)``) resolve against BASE_URL and are read from disk;
    report.css is always applied, whether the page links it or not. The PDF's title is
    the page's <title>, its language the page's ``lang``.
    """
    app = current_app._get_current_object()
    fetcher = fetcher_for(app)
    base_url = urljoin(app.config["BASE_URL"], "/")
    document = HTML(string=html, base_url=base_url, url_fetcher=fetcher, media_type="print").render(
        stylesheets=[CSS(filename=str(REPORT_CSS), url_fetcher=fetcher)],
        pdf_tags=True,  # a tagged PDF: screen readers get headings, tables and reading order
    )
    # WeasyPrint reads <title>; a page without one still gets a meaningful title.
    document.metadata.title = document.metadata.title or _("Impact report")
    document.metadata.generator = "Attest"
    return document.write_pdf(pdf_tags=True)
