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

Each press passes :class:`~.access.PressGate` first (workspace, alert
channels, allow-lists for the closing buttons). A refused press is answered
with an ephemeral "not allowed", counted as ``not_allowed`` and
dead-lettered with its reason. Dead letters of interactions keep only the
ids, the buttons and the reason: never the ``response_url`` or the token.
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

from crisiswatch.contracts.schemas import ActionKind, IncidentAction, utc_now, validation_problems

from . import metrics
from .access import PressGate, Refusal
from .alert_blocks import ACTION_PREFIX, COPY_REPLY, ButtonValue, escaped
from .settings import SlackSettings

log = logging.getLogger(__name__)

NOT_ALLOWED = "not_allowed"
_DEAD_LETTER_TEXT = 2000


class SlackUser(BaseModel):
    """The presser, as a ``block_actions`` payload names them."""

    id: str
    username: str = ""
    name: str = ""
    team_id: str | None = None


class SlackTeam(BaseModel):
    """The workspace the press came from."""

    id: str


class SlackChannel(BaseModel):
    """The channel of the message whose button was pressed."""

    id: str


class SlackContainer(BaseModel):
    """Where the pressed button lives; for a message, its channel."""

    channel_id: str | None = None


class PressedButton(BaseModel):
    """One entry of a ``block_actions`` payload's ``actions``."""

    action_id: str
    value: str = ""
    action_ts: str | None = None


class BlockActions(BaseModel):
    """The parts of Slack's ``block_actions`` interaction payload the alerter reads."""

    type: Literal["block_actions"]
    user: SlackUser
    team: SlackTeam | None = None
    channel: SlackChannel | None = None
    container: SlackContainer | None = None
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
    """What one interaction payload asks for, and what in it could not be read (with the reasons).

    ``teams`` are the workspace ids the payload gives for the presser (the
    interaction's team and the user's own), ``channel`` the channel of the
    pressed message: what :class:`PressPolicy` checks.
    """

    actions: list[IncidentAction] = field(default_factory=list)
    copies: list[CopyRequest] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    teams: frozenset[str] = frozenset()
    channel: str | None = None


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
        return Presses(problems=[f"not a readable block_actions payload: {validation_problems(error)}"])
    channel = interaction.channel.id if interaction.channel else None
    if channel is None and interaction.container is not None:
        channel = interaction.container.channel_id
    teams = {interaction.user.team_id, interaction.team.id if interaction.team else None}
    presses = Presses(teams=frozenset(team for team in teams if team), channel=channel)
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
        except ValidationError as error:
            presses.problems.append(f"button {button.action_id!r}: {validation_problems(error)}")
        except ValueError as error:
            presses.problems.append(f"button {button.action_id!r}: {str(error)[:300]}")
    return presses


def _field(container: object, key: str) -> str | None:
    """``container[key]`` when ``container`` is a mapping and the entry is text (cut short), else None."""
    value = container.get(key) if isinstance(container, dict) else None
    return value[:_DEAD_LETTER_TEXT] if isinstance(value, str) else None


def dead_letter_record(payload: dict[str, Any]) -> bytes:
    """What a dead letter keeps of an interaction: the ids and the buttons, nothing that grants access (pure).

    A ``block_actions`` payload carries a ``response_url`` (anyone holding it
    may post into the channel for 30 minutes) and a verification token; the
    dead-letter topic is read by more people than Slack's secrets should be,
    so only the team, user, channel and each button's id and value are kept.
    """
    user, actions = payload.get("user"), payload.get("actions")
    record = {
        "type": _field(payload, "type"),
        "team_id": _field(payload.get("team"), "id"),
        "user_id": _field(user, "id"),
        "user_team_id": _field(user, "team_id"),
        "channel_id": _field(payload.get("channel"), "id") or _field(payload.get("container"), "channel_id"),
        "actions": [
            {"action_id": _field(action, "action_id"), "value": _field(action, "value")}
            for action in (actions[:5] if isinstance(actions, list) else [])
        ],
    }
    return json.dumps(record, ensure_ascii=False).encode("utf-8", errors="backslashreplace")


Publish = Callable[[IncidentAction], Awaitable[None]]
Reject = Callable[[str, bytes], Awaitable[None]]


class SlackInteractivity(Service):
    """The Socket Mode connection, started and stopped with the alerter's faust app.

    ``gate`` decides who may press what; without one, it is built from the
    ``SLACK_*`` settings in the environment, with user groups looked up
    through ``web_client``, so no caller gets buttons open to anyone.
    """

    def __init__(
        self,
        app_token: str,
        web_client: AsyncWebClient,
        publish: Publish,
        reject: Reject,
        gate: PressGate | None = None,
    ) -> None:
        super().__init__()
        self._app_token = app_token
        self.web_client = web_client
        self.publish = publish
        self.reject = reject
        self.gate = gate or PressGate.from_settings(SlackSettings(), web_client)
        self.client: SocketModeClient | None = None

    async def on_start(self) -> None:
        """Open the Socket Mode connection (slack_sdk reconnects on its own when it drops)."""
        policy = self.gate.policy
        if policy.team_id is None:
            log.error(
                "SLACK_TEAM_ID is not set: every button press will be refused. "
                "Set it to the workspace id (T0...) of the team that acts on alerts"
            )
        self.client = SocketModeClient(app_token=self._app_token, web_client=self.web_client, logger=log)
        self.client.socket_mode_request_listeners.append(self.on_request)
        await self.client.connect()
        log.info(
            "slack socket mode connected",
            extra={
                "team": policy.team_id,
                "alert_channels": len(policy.channels),
                "restricted_buttons": policy.restricted,
            },
        )

    async def on_stop(self) -> None:
        """Close the connection."""
        if self.client is not None:
            await self.client.close()

    async def _sort(self, presses: Presses) -> tuple[list[IncidentAction], list[CopyRequest], list[Refusal]]:
        """The presses the gate lets through, and the refused ones."""
        actions, copies, refusals = [], [], []
        for action in presses.actions:
            refusal = await self.gate.refusal(
                action.kind.value, action.kind, action.user_id, presses.teams, presses.channel
            )
            if refusal is None:
                actions.append(action)
            else:
                refusals.append(refusal)
        for copy in presses.copies:
            refusal = await self.gate.refusal("copy_reply", None, copy.user_id, presses.teams, presses.channel)
            if refusal is None:
                copies.append(copy)
            else:
                refusals.append(refusal)
        return actions, copies, refusals

    async def on_request(self, client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        """Publish the allowed presses, dead-letter the rest, then acknowledge the envelope; answer the presser."""
        if request.type != "interactive":
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
            return
        payload = request.payload if isinstance(request.payload, dict) else {}
        presses = read_presses(payload, utc_now())
        actions, copies, refusals = await self._sort(presses)
        try:
            for action in actions:
                await self.publish(action)
                metrics.ACTIONS.labels(action.kind.value, "received").inc()
            record = dead_letter_record(payload)
            for refusal in refusals:
                await self.reject(f"press not allowed: {refusal.reason}", record)
                metrics.ACTIONS.labels(refusal.action, NOT_ALLOWED).inc()
            for problem in presses.problems:
                await self.reject(problem, record)
                metrics.ACTIONS.labels("unknown", "rejected").inc()
        except Exception as error:  # noqa: BLE001 - unacknowledged, Slack redelivers the envelope
            log.warning("could not publish a button press; Slack will redeliver it", extra={"error": str(error)})
            return
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
        for refusal in refusals:
            log.warning("button press refused", extra={"action": refusal.action, "reason": refusal.reason})
            await self.send_refusal(refusal)
        for copy in copies:
            await self.send_copy(copy)

    async def send_refusal(self, refusal: Refusal) -> None:
        """Tell the presser, alone, that the press did nothing (best effort: the dead letter already keeps it)."""
        if refusal.channel is None:
            return
        try:
            await self.web_client.chat_postEphemeral(
                channel=refusal.channel, user=refusal.user_id, text=refusal.message
            )
        except Exception as error:  # noqa: BLE001 - see the docstring
            log.warning("refusal could not be sent", extra={"error": f"{type(error).__name__}: {error}"})

    async def send_copy(self, copy: CopyRequest) -> None:
        """The reply, alone in an ephemeral message only the presser sees (best effort: nothing depends on it).

        The reply may quote the public's words, so ``&``, ``<`` and ``>`` are
        escaped: Slack shows them as typed and reads no ``<!channel>`` or link
        markup in them.
        """
        reply = escaped(copy.reply)
        try:
            await self.web_client.chat_postEphemeral(
                channel=copy.channel,
                user=copy.user_id,
                text=reply,
                blocks=[
                    SectionBlock(
                        text=MarkdownTextObject(text=f"Reply for incident `{copy.incident_id}`, ready to paste:")
                    ),
                    SectionBlock(text=MarkdownTextObject(text=reply, verbatim=True)),
                ],
            )
            metrics.ACTIONS.labels("copy_reply", "answered").inc()
        except Exception as error:  # noqa: BLE001 - see the docstring
            log.warning("copy reply could not be sent", extra={"error": f"{type(error).__name__}: {error}"})
