"""The operator console: one page (vanilla JS, no build step) that works the handoff queue through the
console API (`/api/...`, served by the backend).

`mount(app)` adds the page, its static files, its interface strings and the canned replies to the
gateway app. The page runs under a strict Content-Security-Policy (no inline script or style), and
everything workers write is inserted as text, never as HTML.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from helpline.console import canned, i18n
from helpline.paths import ROOT

HERE = Path(__file__).resolve().parent
CANNED_FILE = ROOT / "content" / "canned_replies.yml"
STRINGS_FILE = HERE / "i18n.yml"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; media-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class _RevalidatedStaticFiles(StaticFiles):
    """Static files the browser checks (ETag) before each use, so a new release is never half-loaded."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mount(app: FastAPI, canned_file: Path = CANNED_FILE, strings_file: Path = STRINGS_FILE) -> None:
    """Add the console to `app`:

    - GET /console: the page;
    - GET /console/static/{file}: its scripts and style;
    - GET /console/i18n.json: its interface strings, {"en": {...}, "zh": {...}, "vi": {...}};
    - GET /api/canned: the canned replies, {"canned": [{"key", "title": {en, zh, vi}, "text": {zh, vi}}]}.

    The canned replies and the strings are read and checked once, here: a broken file raises
    `helpline.yamlfile.ContentInvalid` naming its file, line and reason, so the service does not start
    with a console that would fail in front of an operator. Edits take effect at the next start.
    """
    replies = {"canned": [reply.as_json() for reply in canned.load(canned_file)]}
    strings = i18n.load(strings_file)
    environment = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
    templates = Jinja2Templates(env=environment)
    context: Dict[str, Any] = {"strings": strings["en"], "languages": i18n.LANGUAGES, "version": _static_version()}

    @app.get("/console", include_in_schema=False)
    async def console_page(request: Request) -> Response:
        response = templates.TemplateResponse(request, "console.html", context)
        response.headers.update(PAGE_HEADERS)
        return response

    @app.get("/console/i18n.json", include_in_schema=False)
    async def console_strings() -> Response:
        return JSONResponse(strings, headers={"Cache-Control": "no-cache"})

    @app.get("/api/canned")
    async def canned_replies() -> Response:
        return JSONResponse(replies, headers={"Cache-Control": "no-cache"})

    app.mount("/console/static", _RevalidatedStaticFiles(directory=HERE / "static"), name="console-static")


def _static_version() -> str:
    """A short hash of the static files, appended to their URLs in the page."""
    digest = hashlib.sha256()
    for path in sorted((HERE / "static").iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]
