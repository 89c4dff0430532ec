"""Sending composed alerts (:class:`~.message.AlertMessage`): Slack bot token, incoming webhook, or console + file.

A notifier only sends: the message was composed once before it arrived, and
the retries and the fallback chain around it are :mod:`.delivery_policy`'s.

Slack calls go through slack_sdk's async clients with its retry handlers
(rate limits honour ``Retry-After``; server and connection errors back off).
What still fails is sorted by :func:`slack_failure`: a failure worth trying
again raises :class:`DeliveryError`, one Slack will repeat for ever (a missing
channel, a revoked token, blocks it cannot render) raises
:class:`UndeliverableError`, and the alert goes to the notifier's ``fallback``
instead. Tokens are read from settings and never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.models.blocks import Block, MarkdownTextObject, SectionBlock
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from crisiswatch.contracts.schemas import Incident, IncidentEventType, Severity

from .alert_blocks import action_note
from .charts import incident_chart
from .message import AlertMessage
from .settings import SlackSettings

log = logging.getLogger(__name__)


RETRYABLE_SLACK_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "message_limit_exceeded",
        "service_unavailable",
        "internal_error",
        "fatal_error",
        "request_timeout",
        "team_added_to_org",
    }
)
"""Error codes Slack answers while it is overloaded or busy: the same call may succeed later."""

CREDENTIAL_SLACK_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "not_allowed_token_type",
        "no_permission",
        "two_factor_setup_required",
        "team_access_not_granted",
        "org_login_required",
        "ekm_access_denied",
        "invalid_token",
        "no_service",
        "no_service_id",
        "no_active_hooks",
        "no_team",
        "team_disabled",
    }
)
"""Error codes that refuse the bot token or the incoming webhook itself, so every alert will fail the same way.

Every other error code Slack answers (``channel_not_found``, ``not_in_channel``,
``is_archived``, ``invalid_blocks``, ``msg_too_long``, ``message_not_found``...)
is final for that one alert: Slack documents them as client errors that a
retry repeats, and an unknown code is treated alike, since waiting on it
would hold back every later alert of the partition.
"""


NO_ANSWER = (aiohttp.ClientError, TimeoutError, OSError)
"""What a call raises when Slack did not answer (refused or reset connection, timeout): worth retrying."""


class DeliveryError(RuntimeError):
    """The alert could not be delivered this time (Slack unreachable, overloaded or failing): worth retrying."""


class UndeliverableError(RuntimeError):
    """Slack refused the alert for good: retrying would repeat the refusal and hold back every later alert.

    ``code`` is Slack's error code (or ``http_<status>``, or the exception's
    type); ``credentials`` is true when the token or webhook itself was
    refused, so every alert through this notifier will fail until it is
    replaced.
    """

    def __init__(self, code: str, detail: str, credentials: bool = False) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.credentials = credentials


def slack_failure(error: Exception, action: str) -> DeliveryError | UndeliverableError:
    """Sort what a Slack call raised (after slack_sdk's own retries) into worth retrying or final.

    Retried: HTTP 429 and 5xx, the codes in :data:`RETRYABLE_SLACK_ERRORS`,
    and errors that got no answer at all (connection refused or reset,
    timeouts). Final: every other ``ok: false`` answer, and any other
    exception (a request the client itself refuses fails the same way next
    time). ``action`` says what was being done, for the log and the dead letter.
    """
    if isinstance(error, SlackApiError):
        response = error.response
        status = int(getattr(response, "status_code", None) or getattr(response, "status", 0) or 0)
        data = getattr(response, "data", None)
        code = str(data.get("error") or "") if isinstance(data, dict) else ""
        if status == 429 or status >= 500 or code in RETRYABLE_SLACK_ERRORS:
            return DeliveryError(f"Slack answered {status} {code or 'without an error code'} to {action}")
        return UndeliverableError(code or f"http_{status}", action, credentials=code in CREDENTIAL_SLACK_ERRORS)
    if isinstance(error, NO_ANSWER):
        return DeliveryError(f"no answer from Slack to {action}: {type(error).__name__}: {str(error)[:200]}")
    return UndeliverableError(type(error).__name__, f"{action}: {str(error)[:200]}")


class Notifier(Protocol):
    """Something that shows an incident event to people.

    ``fallback`` is where an alert goes when this notifier refuses it for good
    (:class:`UndeliverableError`); None when there is nowhere further.
    """

    channel: str
    fallback: Notifier | None

    async def send(self, message: AlertMessage, thread: str | None) -> str | None:
        """Show the message; return the thread id to use for later events of the incident, if any."""


def _retry_handlers() -> list[object]:
    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=5),
        AsyncServerErrorRetryHandler(max_retry_count=3),
        AsyncConnectionErrorRetryHandler(max_retry_count=3),
    ]


class ConsoleNotifier:
    """Prints the headline and appends the full alert (incident + blocks) to a JSONL file.

    The last resort of every fallback chain. It makes no threads, so it hands
    back the thread it was given.
    """

    channel = "console"
    fallback: Notifier | None = None

    def __init__(self, alerts_file: Path) -> None:
        self.alerts_file = alerts_file

    async def send(self, message: AlertMessage, thread: str | None) -> str | None:
        """Print and record the alert."""
        print(f"ALERT {message.text}", file=sys.stdout, flush=True)
        record = {"incident": message.incident.model_dump(mode="json"), "blocks": message.blocks_json()}
        try:
            self.alerts_file.parent.mkdir(parents=True, exist_ok=True)
            with self.alerts_file.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as error:  # a full or read-only volume: the alert was printed, the event is dead-lettered
            raise UndeliverableError("alerts_file", f"appending to {self.alerts_file}: {error.strerror}") from None
        return thread


@dataclass(frozen=True)
class Routes:
    """Which channel an incident opens in: its brand's, else its severity's, else the default; who critical pages."""

    default: str
    by_brand: Mapping[str, str] = field(default_factory=dict)
    by_severity: Mapping[Severity, str] = field(default_factory=dict)
    critical_mention: str | None = None

    def channel_for(self, incident: Incident) -> str:
        """The channel for the incident's opening (later events follow its thread there)."""
        return self.by_brand.get(incident.brand) or self.by_severity.get(incident.severity) or self.default

    def mention_for(self, incident: Incident) -> str | None:
        """The mention that pages people: critical openings and escalations to critical, unless snoozed."""
        detected = incident.event in (IncidentEventType.OPENED, IncidentEventType.ESCALATED)
        paging = detected and incident.severity is Severity.CRITICAL and not incident.snoozed_at(incident.emitted_at)
        return self.critical_mention if paging else None


def bot_client(token: str, api_url: str) -> AsyncWebClient:
    """A Web API client for the bot token with slack_sdk's retry handlers."""
    return AsyncWebClient(token=token, base_url=api_url, retry_handlers=_retry_handlers(), timeout=10)


class SlackBotNotifier:
    """Posts the opening alert to its routed channel, then keeps the incident in that message's thread.

    The parent message always shows the incident's latest state (``chat.update``),
    with the lifecycle buttons when ``interactive``. The thread gets the full
    alert on escalation and resolution, and one line for each person's action.
    While the incident is snoozed, an escalation only updates the parent: no
    thread reply, no page. The thread id it returns is ``channel:ts``, so later
    events find the thread even when routing would now pick another channel.
    ``channel`` names the notifier in metrics (the fallback one is
    ``slack-fallback``).
    """

    def __init__(
        self,
        client: AsyncWebClient,
        routes: Routes | str,
        interactive: bool = False,
        fallback: Notifier | None = None,
        channel: str = "slack",
    ) -> None:
        self.routes = routes if isinstance(routes, Routes) else Routes(default=routes)
        self.client = client
        self.interactive = interactive
        self.fallback = fallback
        self.channel = channel

    async def send(self, message: AlertMessage, thread: str | None) -> str | None:
        """``chat.postMessage`` for a new incident; ``chat.update`` of the parent plus a thread reply afterwards.

        Raises :class:`DeliveryError` when worth retrying, :class:`UndeliverableError` when Slack refused for good.
        """
        incident, text = message.incident, message.text
        blocks: list[Block] = list(message.blocks)
        parent_blocks = list(message.interactive_blocks if self.interactive else message.blocks)
        mention = self.routes.mention_for(incident)
        if mention:
            text = f"{mention} {text}"
            paging = SectionBlock(text=MarkdownTextObject(text=f"{mention} critical incident"))
            blocks, parent_blocks = [paging, *blocks], [paging, *parent_blocks]
        channel = self.routes.channel_for(incident)
        try:
            if thread is None or incident.event is IncidentEventType.OPENED:
                response = await self.client.chat_postMessage(channel=channel, text=text, blocks=parent_blocks)
                ts = str(response["ts"])
            else:
                channel, ts = self._parse(thread)
                await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=parent_blocks)
                if incident.event.by_person or incident.acted_by:
                    await self.client.chat_postMessage(channel=channel, thread_ts=ts, text=action_note(incident))
                elif not (incident.event is IncidentEventType.ESCALATED and incident.snoozed_at(incident.emitted_at)):
                    await self.client.chat_postMessage(channel=channel, thread_ts=ts, text=text, blocks=blocks)
        except Exception as error:  # slack_sdk and aiohttp raise unrelated types: slack_failure sorts them all
            raise slack_failure(error, f"posting {incident.incident_id} r{incident.revision} to {channel}") from error
        if incident.event in (IncidentEventType.OPENED, IncidentEventType.ESCALATED, IncidentEventType.UPDATED):
            await self._upload_chart(incident, channel, ts)
        return f"{channel}:{ts}"

    def _parse(self, thread: str) -> tuple[str, str]:
        channel, _, ts = thread.rpartition(":")
        return channel or self.routes.default, ts

    async def _upload_chart(self, incident: Incident, channel: str, thread: str) -> None:
        """Attach the chart to the incident's thread.

        The alert itself is already delivered, so nothing here may fail the
        delivery: a failed render or upload is logged and not retried, since a
        retry would post the alert twice.
        """
        try:
            chart = await asyncio.to_thread(incident_chart, incident)
            if chart is None:
                return
            await self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread,
                file=chart,
                filename=f"{incident.incident_id}-r{incident.revision}.png",
                title=f"{incident.brand}: the last hours",
                alt_txt=f"Mentions of {incident.brand}, negative mentions and their normal range",
            )
        except Exception as error:  # noqa: BLE001 - see the docstring: the chart must never undo the delivery
            log.warning(
                "chart upload failed",
                extra={"incident": incident.incident_id, "error": f"{type(error).__name__}: {error}"},
            )


class SlackWebhookNotifier:
    """Posts every event to an incoming webhook (no threads: webhooks cannot address them)."""

    channel = "webhook"

    def __init__(
        self,
        url: str,
        fallback: Notifier | None = None,
    ) -> None:
        self.fallback = fallback
        self.client = AsyncWebhookClient(url=url, retry_handlers=_retry_handlers(), timeout=10)

    async def send(self, message: AlertMessage, thread: str | None) -> str | None:
        """Send the alert; 429 and 5xx raise :class:`DeliveryError`, other refusals :class:`UndeliverableError`.

        A webhook answers its error code as the body (``channel_not_found``,
        ``invalid_token``, ``no_service``...).
        """
        incident = message.incident
        action = f"posting {incident.incident_id} r{incident.revision} to the webhook"
        try:
            response = await self.client.send(text=message.text, blocks=list(message.blocks))
        except NO_ANSWER as error:  # the URL is the secret and errors may quote it: only the type is kept
            raise DeliveryError(f"no answer from the webhook to {action}: {type(error).__name__}") from None
        except Exception as error:  # noqa: BLE001 - a request the client refuses is refused the same way next time
            raise UndeliverableError(type(error).__name__, action) from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise DeliveryError(f"webhook answered {status} to {action}")
        if status >= 300:
            code = (response.body or "").strip()[:100] or f"http_{status}"
            raise UndeliverableError(code, action, credentials=code in CREDENTIAL_SLACK_ERRORS)
        return thread


def make_notifier(slack: SlackSettings, alerts_file: Path, client: AsyncWebClient | None = None) -> Notifier:
    """The notifier the settings ask for.

    Bot mode uses ``client`` when given (the one Socket Mode shares) and shows
    the lifecycle buttons when an app-level token enables Socket Mode. Its
    fallback chain ends on the console and ``alerts_file``: in bot mode
    through ``fallback_channel`` first, when one is set.
    """
    console = ConsoleNotifier(alerts_file)
    if slack.mode == "bot" and slack.bot_token and slack.channel:
        routes = Routes(slack.channel, slack.channel_by_brand, slack.channel_by_severity, slack.critical_mention)
        client = client or bot_client(slack.bot_token.get_secret_value(), slack.api_url)
        fallback: Notifier = console
        if slack.fallback_channel:
            fallback = SlackBotNotifier(
                client,
                Routes(slack.fallback_channel, critical_mention=slack.critical_mention),
                interactive=slack.interactive,
                fallback=console,
                channel="slack-fallback",
            )
        return SlackBotNotifier(client, routes, slack.interactive, fallback)
    if slack.mode == "webhook" and slack.webhook_url:
        return SlackWebhookNotifier(slack.webhook_url.get_secret_value(), fallback=console)
    return console
