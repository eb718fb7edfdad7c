"""A small client of a running worker's control API (``mmops trade status|stop|start|kill|resume``).

Every failure is one sentence: no API at the address, a refused token (401/403), a bad symbol
or limit (404/422, the API's own message), an answer that is not the API's.
"""

from __future__ import annotations

from typing import Any

import httpx

from features.errors import ConfigError, OperationalError


class ControlClient:
    """Calls ``url`` with ``token`` as the bearer token.

    Args:
        url: the API's base URL, e.g. ``http://127.0.0.1:8765``.
        token: the viewer or operator token.
        timeout_s: per call, seconds.
    """

    def __init__(self, url: str, token: str, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s
        )

    def close(self) -> None:
        self._http.close()

    def get(self, path: str) -> dict[str, Any]:
        return self._call("GET", path, None)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", path, body)

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        try:
            r = self._http.request(method, path, json=body)
        except httpx.ConnectError as exc:
            raise OperationalError(
                f"no control API at {self.url}: {exc} (is `mmops trade --api-port` running there?)"
            ) from exc
        except httpx.HTTPError as exc:
            raise OperationalError(f"control API at {self.url}: {type(exc).__name__}: {exc}") from exc
        try:
            doc = r.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise OperationalError(
                f"{self.url}{path} answered {r.status_code} with something that is not the control API's JSON"
            )
        if r.status_code >= 400:
            detail = doc.get("detail", r.reason_phrase)
            raise ConfigError(f"control API refused {method} {path} ({r.status_code}): {detail}")
        return doc
