"""The channels that carry alerts to people, built from the config: the webhook
(`alerts.webhook`) and e-mail (`alerts.email`); the `Dispatcher` feeds them."""

from __future__ import annotations

import structlog

from ccvault.alerts.email import EmailChannel
from ccvault.alerts.model import Channel, secrets_of
from ccvault.alerts.webhook import WebhookChannel
from ccvault.config.alerts import AlertsBase
from ccvault.host.logs import REDACTOR

log = structlog.get_logger("ccvault.alerts")


def build_channels(alerts_config: AlertsBase) -> list[Channel]:
    """The channels configured under [alerts.webhook] / [alerts.email], webhook first.
    Their secrets join the log redactor too, as a second line of defence."""
    channels: list[Channel] = []
    if alerts_config.webhook is not None:
        channels.append(WebhookChannel(alerts_config.webhook))
    if alerts_config.email is not None:
        channels.append(EmailChannel(alerts_config.email))
    for channel in channels:
        REDACTOR.update(secrets_of(channel))
    return channels
