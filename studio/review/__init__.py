"""The review page: people sign in, follow jobs, write briefs, pick, annotate and sign off
in a browser. Server-rendered HTML (Jinja2 templates in ``templates/``) with a little plain
JavaScript written here (``static/``); every action goes through the same ``/v1`` API as
any client, with the page's session cookie in place of a token (studio.sessions).

``add_pages(app)`` puts the pages under ``/review`` and the static files under
``/review/static``; ``studio.api.app.create_app`` calls it. Nothing is loaded from another
site: the page works without a network connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def add_pages(app: FastAPI) -> None:
    from studio.review.pages import add_pages as add

    add(app)
