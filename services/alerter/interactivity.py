"""Lifecycle buttons over Slack Socket Mode: presses become :class:`IncidentAction` records on ``crisis.actions``.

Socket Mode needs no public URL: the alerter opens a WebSocket to Slack with
the app-level token (``xapp-...``). Each press is published (and the broker's
acknowledgement awaited) before the envelope is acknowledged, so a press is
never lost: if publishing fails, Slack delivers the envelope again, and
applying an action twice changes nothing. The lifecycle buttons (Acknowledge,
Assign to me, Snooze, Resolve, Not a crisis) become an :class:`IncidentAction`
whose kind is the ``action_id`` after the prefix; a name that is no
:class:`ActionKind` is dead-lettered. "Copy reply" changes no state: it
answers the presser at once with an ephemeral message holding the reply as
plain text, ready to paste. Presses that cannot be read are dead-lettered with
the reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from mode import Service
from pydantic import BaseModel, ValidationError
from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from crisiswatch.contracts.schemas import ActionKind, IncidentAction, utc_now

from . import metrics
from .compose import ACTION_PREFIX, COPY_REPLY, ButtonValue

log = logging.getLogger(__name__)


class SlackUser(BaseModel):
    """The presser, as a ``block_actions`` payload names them."""

    id: str
    username: str = ""
    name: str = ""


class SlackChannel(BaseModel):
    """The channel of the message whose button was pressed."""

    id: str


class PressedButton(BaseModel):
    """One entry of a ``block_actions`` payload's ``actions``."""

    action_id: str
    value: str = ""
    action_ts: str | None = None


class BlockActions(BaseModel):
    """The parts of Slack's ``block_actions`` interaction payload the alerter reads."""

    type: Literal["block_actions"]
    user: SlackUser
    channel: SlackChannel | None = None
    actions: list[PressedButton]


@dataclass(frozen=True)
class CopyRequest:
    """Someone asked for a drafted reply as plain text."""

    user_id: str
    channel: str
    incident_id: str
    reply: str


@dataclass(frozen=True)
class Presses:
    """What one interaction payload asks for, and what in it could not be read (with the reasons)."""

    actions: list[IncidentAction] = field(default_factory=list)
    copies: list[CopyRequest] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _pressed_at(button: PressedButton, fallback: datetime) -> datetime:
    """When the button was pressed (Slack's ``action_ts``), so a redelivered press means the same moment."""
    try:
        return datetime.fromtimestamp(float(button.action_ts or ""), UTC)
    except (ValueError, OverflowError, OSError):
        return fallback


def read_presses(payload: dict[str, Any], now: datetime) -> Presses:
    """Turn a Socket Mode ``interactive`` payload into actions and copy requests (pure).

    Payloads of other interaction types, and buttons that are not ours, are
    ignored; our buttons with unreadable values are reported as problems.
    """
    if payload.get("type") != "block_actions":
        return Presses()
    try:
        interaction = BlockActions.model_validate(payload)
    except ValidationError as error:
        return Presses(problems=[f"not a readable block_actions payload: {str(error)[:300]}"])
    presses = Presses()
    channel = interaction.channel.id if interaction.channel else None
    for button in interaction.actions:
        if not button.action_id.startswith(ACTION_PREFIX):
            continue
        name = button.action_id.removeprefix(ACTION_PREFIX)
        try:
            value = ButtonValue.model_validate_json(button.value)
            if name.startswith(COPY_REPLY):
                if not value.reply or channel is None:
                    raise ValueError("a copy button needs its reply and a channel")
                presses.copies.append(CopyRequest(interaction.user.id, channel, value.incident, value.reply))
                continue
            presses.actions.append(
                IncidentAction(
                    incident_id=value.incident,
                    brand=value.brand,
                    kind=ActionKind(name),
                    user_id=interaction.user.id,
                    user_name=interaction.user.username or interaction.user.name,
                    acted_at=_pressed_at(button, now),
                    channel=channel,
                )
            )
        except (ValidationError, ValueError) as error:
            presses.problems.append(f"button {button.action_id!r}: {str(error)[:300]}")
    return presses


Publish = Callable[[IncidentAction], Awaitable[None]]
Reject = Callable[[str, bytes], Awaitable[None]]


class SlackInteractivity(Service):
    """The Socket Mode connection, started and stopped with the alerter's faust app."""

    def __init__(self, app_token: str, web_client: AsyncWebClient, publish: Publish, reject: Reject) -> None:
        super().__init__()
        self._app_token = app_token
        self.web_client = web_client
        self.publish = publish
        self.reject = reject
        self.client: SocketModeClient | None = None

    async def on_start(self) -> None:
        """Open the Socket Mode connection (slack_sdk reconnects on its own when it drops)."""
        self.client = SocketModeClient(app_token=self._app_token, web_client=self.web_client, logger=log)
        self.client.socket_mode_request_listeners.append(self.on_request)
        await self.client.connect()
        log.info("slack socket mode connected")

    async def on_stop(self) -> None:
        """Close the connection."""
        if self.client is not None:
            await self.client.close()

    async def on_request(self, client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        """Publish the presses, then acknowledge the envelope; answer copy requests."""
        if request.type != "interactive":
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
            return
        payload = request.payload if isinstance(request.payload, dict) else {}
        presses = read_presses(payload, utc_now())
        try:
            for action in presses.actions:
                await self.publish(action)
                metrics.ACTIONS.labels(action.kind.value, "received").inc()
            for problem in presses.problems:
                await self.reject(problem, json.dumps(payload, ensure_ascii=False).encode())
                metrics.ACTIONS.labels("unknown", "rejected").inc()
        except Exception as error:  # noqa: BLE001 - unacknowledged, Slack redelivers the envelope
            log.warning("could not publish a button press; Slack will redeliver it", extra={"error": str(error)})
            return
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
        for copy in presses.copies:
            await self.send_copy(copy)

    async def send_copy(self, copy: CopyRequest) -> None:
        """The reply, alone in an ephemeral message only the presser sees (best effort: nothing depends on it)."""
        try:
            await self.web_client.chat_postEphemeral(
                channel=copy.channel,
                user=copy.user_id,
                text=copy.reply,
                blocks=[
                    SectionBlock(
                        text=MarkdownTextObject(text=f"Reply for incident `{copy.incident_id}`, ready to paste:")
                    ),
                    SectionBlock(text=MarkdownTextObject(text=copy.reply, verbatim=True)),
                ],
            )
            metrics.ACTIONS.labels("copy_reply", "answered").inc()
        except Exception as error:  # noqa: BLE001 - see the docstring
            log.warning("copy reply could not be sent", extra={"error": f"{type(error).__name__}: {error}"})
