"""Following a person's links through the site, as a browser would, and reading the forms
on each page: the sweeps find the pages and forms themselves, so a new one is covered."""

from __future__ import annotations

import html
from collections import deque
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Final
from urllib.parse import urldefrag, urlsplit

from django.http import HttpResponse
from django.test import Client

# Never followed: signing out ends the crawl's session; static files are not pages.
SKIP: Final = ("/accounts/logout/", "/static/", "/api/schema/")


@dataclass
class Form:
    page: str
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)  # name -> type (text, select, ...)
    values: dict[str, str] = field(default_factory=dict)  # name -> value as served
    options: dict[str, list[str]] = field(default_factory=dict)


class _Page(HTMLParser):
    def __init__(self, url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.url = url
        self.links: list[str] = []
        self.forms: list[Form] = []
        self.ids: list[str] = []
        self._form: Form | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if a.get("id"):
            self.ids.append(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "form":
            action = a.get("action") or self.url
            self._form = Form(self.url, action, (a.get("method") or "get").lower())
            self.forms.append(self._form)
        elif self._form is not None and a.get("name"):
            name = a["name"]
            if tag == "input":
                kind = (a.get("type") or "text").lower()
                if kind in ("checkbox", "radio") and name in self._form.fields:
                    self._form.options[name].append(a.get("value", "on"))
                    return
                self._form.fields[name] = kind
                self._form.values[name] = a.get("value", "")
                self._form.options[name] = [a.get("value", "on")]
            elif tag in ("textarea", "select"):
                self._form.fields[name] = tag
                self._form.values[name] = ""
                self._form.options[name] = []
                self._select = name if tag == "select" else None
        elif tag == "option" and self._form is not None and self._select:
            self._form.options[self._select].append(a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


def _local(url: str, base: str) -> str | None:
    url = urldefrag(html.unescape(url))[0]
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return None
    if not url.startswith("/"):
        url = base.rsplit("/", 1)[0] + "/" + url
    return None if url.startswith(SKIP) else url


@dataclass
class Crawl:
    pages: dict[str, HttpResponse] = field(default_factory=dict)
    forms: list[Form] = field(default_factory=list)
    # url -> ids used more than once on that page (a label for one of them names the other)
    repeated_ids: dict[str, list[str]] = field(default_factory=dict)


def crawl(client: Client, start: list[str], *, limit: int = 80) -> Crawl:
    """GET ``start`` and every local link reached from it (each path once, at most
    ``limit`` pages), collecting the responses and the forms of the HTML ones."""
    seen_paths: set[str] = set()
    queue = deque(start)
    result = Crawl()
    while queue and len(result.pages) < limit:
        url = queue.popleft()
        path = urlsplit(url).path
        if path in seen_paths:
            continue
        seen_paths.add(path)
        response = client.get(url)
        result.pages[url] = response
        if response.status_code in (301, 302):
            queue.append(response["Location"])
            continue
        if not response.get("Content-Type", "").startswith("text/html"):
            continue
        page = _Page(url)
        page.feed(response.content.decode())
        result.forms.extend(page.forms)
        if repeated := sorted({i for i in page.ids if page.ids.count(i) > 1}):
            result.repeated_ids[url] = repeated
        for href in page.links:
            local = _local(href, url)
            if local is not None:
                queue.append(local)
    return result


def body(response: HttpResponse) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)  # type: ignore[attr-defined]
    return bytes(response.content)
