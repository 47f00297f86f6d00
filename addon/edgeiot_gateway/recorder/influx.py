"""HTTP writes to InfluxDB 1.x (`/write`) and the v2-compatible API (`/api/v2/write`)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from dataclasses import dataclass

import aiohttp

_LOGGER = logging.getLogger(__name__)


class WriteRejected(Exception):  # noqa: N818 (a verdict, not a fault of ours)
    """InfluxDB refused the data itself (4xx): retrying the same points cannot succeed.

    `refused` is how many points of the body InfluxDB did not write, when its answer says
    (1.x writes the valid points of a partial write); None means all of them.
    """

    def __init__(self, message: str, refused: int | None = None) -> None:
        super().__init__(message)
        self.refused = refused


# InfluxDB 1.x's answer to a partial write: one "unable to parse '<line>': <why>" per refused line,
# then "dropped=<n>" points outside the retention policy.
_UNPARSABLE = re.compile(r"(?:^|\n|partial write: )unable to parse '")
_DROPPED = re.compile(r"dropped=(\d+)")


def refused_points(answer: str) -> int | None:
    """How many points a 400 answer (`{"error": "..."}`) says were refused (None: it does
    not say)."""
    with contextlib.suppress(ValueError, TypeError, KeyError):
        answer = str(json.loads(answer)["error"])
    if "partial write" not in answer:
        return None
    dropped = _DROPPED.search(answer)
    return len(_UNPARSABLE.findall(answer)) + (int(dropped.group(1)) if dropped else 0)


class WriteTooLarge(Exception):  # noqa: N818
    """The body exceeds the server's limit (413): split it."""


class WriteFailed(Exception):  # noqa: N818
    """InfluxDB is down, slow or failing (5xx, timeout, connection): retry later."""


@dataclass(slots=True, frozen=True)
class InfluxTarget:
    """Where and how to write."""

    url: str
    api: int = 1  # 1: /write?db=  2: /api/v2/write?org=&bucket= (InfluxDB 2 and 3)
    database: str = "edgeiot"
    retention_policy: str | None = None
    username: str | None = None
    password: str | None = None
    org: str | None = None
    bucket: str | None = None
    token: str | None = None
    precision: str = "ns"
    timeout: float = 10.0
    create_database: bool = True
    retention: str | None = None  # duration of the default policy (1.x), e.g. 90d or INF


class InfluxWriter:
    """Posts line-protocol bodies; classifies failures as rejected (4xx) or failed (retry)."""

    def __init__(self, target: InfluxTarget, session: aiohttp.ClientSession) -> None:
        self.target = target
        self.session = session
        t = target
        if t.api == 1:
            self.url = f"{t.url.rstrip('/')}/write"
            self.params = {"db": t.database, "precision": t.precision}
            if t.retention_policy:
                self.params["rp"] = t.retention_policy
        else:
            self.url = f"{t.url.rstrip('/')}/api/v2/write"
            self.params = {"org": t.org or "", "bucket": t.bucket or t.database,
                           "precision": t.precision}  # fmt: skip
        self.headers = {"Content-Type": "text/plain; charset=utf-8"}
        if t.token:
            self.headers["Authorization"] = f"Token {t.token}"
        self.auth = aiohttp.BasicAuth(t.username, t.password or "") if t.username else None

    async def prepare(self) -> None:
        """Create the database and set its retention (1.x) when allowed; failures are logged."""
        t = self.target
        if t.api != 1 or not t.create_database:
            return
        statements = [f'CREATE DATABASE "{t.database}"']
        if t.retention:
            statements.append(
                f'ALTER RETENTION POLICY "autogen" ON "{t.database}" DURATION {t.retention}'
            )
        for statement in statements:
            try:
                async with self.session.post(
                    f"{t.url.rstrip('/')}/query",
                    params={"q": statement},
                    auth=self.auth,
                    timeout=aiohttp.ClientTimeout(total=t.timeout),
                ) as response:
                    text = await response.text()
                    if response.status >= 300 or '"error"' in text:
                        _LOGGER.warning("%s: %s %s", statement, response.status, text[:300])
            except (aiohttp.ClientError, TimeoutError) as err:
                _LOGGER.warning("Cannot prepare database %s yet: %s", t.database, err)
                return

    async def write(self, body: bytes) -> None:
        """Write one body; raises WriteRejected (400), WriteTooLarge (413), WriteFailed (retry)."""
        try:
            async with self.session.post(
                self.url,
                params=self.params,
                data=body,
                headers=self.headers,
                auth=self.auth,
                timeout=aiohttp.ClientTimeout(total=self.target.timeout),
            ) as response:
                if response.status < 300:
                    return
                text = await response.text()
                if response.status == 400:  # bad data (parse error, field type conflict)
                    raise WriteRejected(text[:500], refused_points(text))
                text = text[:500]
                if response.status == 413:
                    raise WriteTooLarge(text)
                # 5xx, but also 401/403/404 (credentials, missing database): fixable, keep data.
                raise WriteFailed(f"{response.status}: {text}")
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise WriteFailed(repr(err)) from err
