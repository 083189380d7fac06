"""The webhook channel: Alertmanager v4 JSON over HTTP(S), no redirects followed (so an
Authorization header never reaches a Location)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import structlog

from ccvault.alerts.model import USER_AGENT, ZERO_TIME, Alert, hostname
from ccvault.config.alerts import WebhookConfig
from ccvault.timefmt import utc_text

log = structlog.get_logger("ccvault.alerts")


def alertmanager_payload(alert: Alert, instance: str) -> dict[str, Any]:
    """The JSON Alertmanager's webhook receiver sends (version 4), for one alert, so any
    receiver written for Alertmanager (ntfy, Matrix/Slack bridges, PagerDuty…) reads it."""
    labels = {
        "alertname": alert.name,
        "severity": alert.severity,
        "instance": instance,
        **alert.labels,
    }
    annotations = {"summary": alert.summary, **alert.details}
    item = {
        "status": alert.status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": utc_text(alert.starts_ms),
        "endsAt": ZERO_TIME if alert.ends_ms is None else utc_text(alert.ends_ms),
        "generatorURL": "",
        "fingerprint": alert.fingerprint,
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alert.name}"}}',
        "truncatedAlerts": 0,
        "status": alert.status,
        "receiver": "ccvault",
        "groupLabels": {"alertname": alert.name},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [item],
    }


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would re-send the Authorization header to wherever the Location points
    (and turn the POST into a GET): treat any 3xx as a failed delivery instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookChannel:
    """POSTs Alertmanager-style JSON to one URL. Headers (often a bearer token) are never
    logged; a user:password in the URL becomes a Basic Authorization header."""

    name = "webhook"

    def __init__(self, config: WebhookConfig) -> None:
        self.timeout = float(config.timeout_seconds)
        self.url, userinfo_header, url_secrets = _split_userinfo(config.url)
        self.headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **userinfo_header,
            **dict(config.headers),
        }
        # A whole "Bearer <token>" value, and the token alone.
        values = [v for v in config.headers.values() if v]
        self.secrets = (*url_secrets, *values, *(v.split()[-1] for v in values if v.split()))
        self.instance = hostname()
        # stdlib urllib.request: httpx is only a test dependency, and one small POST needs
        # no client pool. Environment proxies are honoured; redirects are not followed.
        self._opener = urllib.request.build_opener(_NoRedirect)

    def send(self, alert: Alert) -> None:
        """One POST; raises on a connection error, a timeout or a non-2xx answer."""
        body = json.dumps(alertmanager_payload(alert, self.instance)).encode()
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(65_536)
                status = response.status
        except urllib.error.HTTPError as exc:
            exc.close()
            raise WebhookError(
                f"HTTP {exc.code} {exc.reason}"
                + (" (redirects are not followed)" if 300 <= exc.code < 400 else "")
            ) from None
        except urllib.error.URLError as exc:
            raise WebhookError(f"cannot reach the webhook: {exc.reason}") from None
        except TimeoutError:
            raise WebhookError(f"no answer within {self.timeout:g} s") from None
        if not 200 <= status < 300:
            raise WebhookError(f"HTTP {status}")


class WebhookError(OSError):
    """A failed webhook delivery; the text names no header, URL credential or body."""


def _split_userinfo(url: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    """urllib cannot send `https://user:pw@host/`: strip the userinfo into a Basic header."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}, ()
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    netloc = parts.netloc.rpartition("@")[2]
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    clean = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return clean, {"Authorization": f"Basic {token}"}, (password, token)
