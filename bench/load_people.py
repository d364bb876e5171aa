"""The load benchmark's simulated people (bench/load.py): each signs in through the real
pages (password, then the MFA code), then browses its role's pages in a loop, timing each
request; the phases run them all together, or one request at a time."""

from __future__ import annotations

import http.client
import itertools
import re
import threading
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

from load_world import World  # bench/load_world.py, beside this script

TIMEOUT = 30.0  # seconds, every socket operation of a request
BASELINE = "/favicon.ico (baseline)"


class Browser:
    """One person: a keep-alive connection and a cookie jar."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        self.reconnects = 0

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str, bytes]:
        headers = {"Host": f"127.0.0.1:{self.port}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: reconnect once.
                self.connection.close()
                self.reconnects += 1
                if attempt == 2:
                    raise
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response.status, response.headers.get("Location", ""), data

    def form_token(self, path: str) -> str:
        status, _, page = self.request("GET", path)
        found = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if status != 200 or found is None:
            raise SystemExit(f"GET {path} answered {status} without a form")
        return found.group(1).decode()

    def sign_in(self, username: str, password: str, code: Any) -> None:
        """The real sign-in: the password form, then the MFA form with the current code."""
        form = {"username": username, "password": password,
                "csrfmiddlewaretoken": self.form_token("/accounts/login/")}  # fmt: skip
        status, location, _ = self.request("POST", "/accounts/login/", form)
        if status != 302 or "mfa/verify" not in location:
            raise SystemExit(f"sign-in of {username}: {status} to {location!r}")
        token = self.form_token("/accounts/mfa/verify/")
        form = {"token": code(), "csrfmiddlewaretoken": token}
        status, location, _ = self.request("POST", "/accounts/mfa/verify/", form)
        if status != 302 or "mfa" in location:
            raise SystemExit(f"MFA of {username}: {status} to {location!r}")


@dataclass
class Person:
    kind: str
    pages: list[tuple[str, str, int]]  # (label, path, expected status)
    browser: Browser


Sample = tuple[str, float, bool]  # page, seconds, as expected


def pages(kind: str, project: int | None) -> list[tuple[str, str, int]]:
    own = {
        "researcher": [("workspace", f"/projects/{project}/workspace/"),
                       ("release list", f"/projects/{project}/releases/")],
        "checker": [("output queue", "/outputs/")],
        "ig": [("access review queue", "/applications/review/"), ("audit log", "/audit/")],
        "clinician": [("direct care", "/direct-care/")],
        "anonymous": [("register (anonymous)", "/register/"), ("/healthz", "/healthz")],
    }[kind]  # fmt: skip
    return [(label, path, 200) for label, path in own] + [(BASELINE, "/favicon.ico", 204)]


def people_of(world: World, port: int) -> list[Person]:
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from sde.identity.models import User

    people = []
    for kind, ids in world.people.items():
        for pk in ids:
            browser = Browser(port)
            if pk:
                device = TOTPDevice.objects.get(user_id=pk)
                username = User.objects.get(pk=pk).username

                def code(d: TOTPDevice = device) -> str:
                    return str(totp(d.bin_key, step=d.step, t0=d.t0, digits=d.digits,
                                    drift=d.drift)).zfill(d.digits)  # fmt: skip

                browser.sign_in(username, world.password, code)
            people.append(Person(kind, pages(kind, world.project_of.get(pk)), browser))
    return people


def browse(person: Person, pages: list[tuple[str, str, int]], run: dict[str, Any],
            samples: list[Sample], failures: list[str]) -> None:  # fmt: skip
    run["go"].wait()
    while True:
        for label, path, expected in pages:
            if time.monotonic() >= run["deadline"] or next(run["budget"]) >= run["limit"]:
                return
            started = time.perf_counter()
            try:
                status, _, _ = person.browser.request("GET", path)
            except (OSError, http.client.HTTPException) as error:
                status = 0
                failures.append(f"{path}: {type(error).__name__}")
                person.browser.connection.close()
            seconds = time.perf_counter() - started
            if status and status != expected:
                failures.append(f"{path}: {status}")
            samples.append((label, seconds, status == expected))


def phase(
    people: list[Person], seconds: float, limit: int, *, baseline_only: bool
) -> tuple[list[Sample], list[str], float, bool]:
    """Everyone browses at once for ``seconds``: (samples, failures, elapsed, stuck)."""
    run = {"go": threading.Event(), "deadline": 0.0, "budget": itertools.count(), "limit": limit}
    samples: list[list[Sample]] = [[] for _ in people]
    failures: list[str] = []
    threads = [
        threading.Thread(target=browse, daemon=True, args=(
            person, person.pages[-1:] if baseline_only else person.pages, run, mine, failures))
        for person, mine in zip(people, samples, strict=True)
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    begun = time.monotonic()
    run["deadline"] = begun + seconds
    run["go"].set()
    for thread in threads:
        thread.join(timeout=max(0.0, run["deadline"] + TIMEOUT + 5 - time.monotonic()))
    elapsed = time.monotonic() - begun
    stuck = any(thread.is_alive() for thread in threads)
    return [s for mine in samples for s in mine], failures, elapsed, stuck


def one_at_a_time(people: list[Person], rounds: int) -> tuple[list[Sample], float]:
    """The first person of each kind in turn, one request at a time, ``rounds`` times over:
    each page's own latency, with nothing else in flight (the anonymous person's
    baseline is left out, so the baseline here is a signed-in person's)."""
    first = {person.kind: person for person in reversed(people)}
    samples: list[Sample] = []
    begun = time.monotonic()
    for _ in range(rounds):
        for person in first.values():
            pages = person.pages[:-1] if person.kind == "anonymous" else person.pages
            for label, path, expected in pages:
                started = time.perf_counter()
                status, _, _ = person.browser.request("GET", path)
                samples.append((label, time.perf_counter() - started, status == expected))
    return samples, time.monotonic() - begun
