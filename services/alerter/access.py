"""Who may press an alert's buttons: the workspace, the alert channels and, for the closing buttons, allow-lists.

Only members of the configured workspace (``SLACK_TEAM_ID``) may press, and
only on messages in the channels alerts are routed to. Without a team id every
press is refused: the alerter could not tell its own team from any other, and
a stranger's Resolve starts the brand's cooldown. Snooze, Resolve and Not a
crisis silence or close an incident, so when ``SLACK_ALLOWED_USERS`` or
``SLACK_ALLOWED_USERGROUPS`` name anyone, only they may press those three;
the other buttons (Acknowledge, Assign to me, Copy reply) stay open to the
team in the alert channels. With both lists empty, anyone in the team and the
alert channels may press every button.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from crisiswatch.contracts.schemas import ActionKind

from .settings import SlackSettings

log = logging.getLogger(__name__)

RESTRICTED_KINDS = frozenset({ActionKind.SNOOZE, ActionKind.RESOLVE, ActionKind.NOT_A_CRISIS})
"""The presses that silence or close an incident: the only ones the allow-lists restrict."""
USERGROUP_TTL_S = 60.0
USERGROUP_TIMEOUT_S = 2.0
"""Slack wants an envelope acknowledged within 3 s; a slower membership lookup counts as failed."""


@dataclass(frozen=True)
class Refusal:
    """A press that is not carried out: ``reason`` for the dead letter, ``message`` for the presser."""

    action: str
    user_id: str
    channel: str | None
    reason: str
    message: str


_OUTSIDER = ":no_entry: Not allowed: the alert's buttons work only for its team, in the alert channels."
_UNCONFIGURED = (
    ":no_entry: Not allowed: the buttons are off until the alerter is told its Slack workspace "
    "(SLACK_TEAM_ID). Ask whoever runs crisiswatch."
)
_NOT_ON_LIST = (
    ":no_entry: Not allowed: only the people on duty may snooze, resolve or close an incident as not a crisis."
)
_LOOKUP_FAILED = (
    ":no_entry: Not allowed for now: Slack did not confirm your user group membership. Try again in a minute."
)


@dataclass(frozen=True)
class PressPolicy:
    """Where the buttons may be pressed, and who may press the restricted ones (pure).

    ``channels`` are every channel alerts are routed to. Empty ``users`` and
    ``usergroups`` leave every button open to the team in those channels.
    """

    team_id: str | None
    channels: frozenset[str]
    users: frozenset[str] = frozenset()
    usergroups: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: SlackSettings) -> PressPolicy:
        """The policy the ``SLACK_*`` settings describe."""
        channels = {
            settings.channel,
            settings.fallback_channel,
            *settings.channel_by_brand.values(),
            *settings.channel_by_severity.values(),
        }
        return cls(
            team_id=settings.team_id,
            channels=frozenset(channel for channel in channels if channel),
            users=frozenset(settings.allowed_users),
            usergroups=tuple(settings.allowed_usergroups),
        )

    @property
    def restricted(self) -> bool:
        """Whether Snooze, Resolve and Not a crisis are kept to the allow-lists."""
        return bool(self.users or self.usergroups)

    def place_refusal(self, teams: frozenset[str], channel: str | None) -> tuple[str, str] | None:
        """Why a press from these teams in this channel is refused (reason, message), or None."""
        if self.team_id is None:
            return "SLACK_TEAM_ID is not set: every press is refused", _UNCONFIGURED
        if teams != {self.team_id}:
            return f"pressed from team {sorted(teams)}, not {self.team_id}", _OUTSIDER
        if channel not in self.channels:
            return f"pressed in channel {channel!r}, which gets no alerts", _OUTSIDER
        return None


class UsergroupMembers:
    """Members of Slack user groups (``usergroups.users.list``, scope ``usergroups:read``), each kept ``ttl_s``.

    The short cache spares Slack's rate limit on a burst of presses, yet a
    person taken off the on-call group loses the restricted buttons within a
    minute. A lookup that fails or is slow answers None, which grants nothing;
    failures are not cached, so the next press asks again.
    """

    def __init__(
        self, client: AsyncWebClient, ttl_s: float = USERGROUP_TTL_S, timeout_s: float = USERGROUP_TIMEOUT_S
    ) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, usergroup: str) -> frozenset[str] | None:
        """The group's member ids, or None when Slack could not say."""
        now = time.monotonic()
        cached = self._cache.get(usergroup)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        try:
            response = await asyncio.wait_for(self.client.usergroups_users_list(usergroup=usergroup), self.timeout_s)
            users = response.get("users")
            if not isinstance(users, list):
                raise ValueError("usergroups.users.list answered no list of users")
        except (SlackClientError, aiohttp.ClientError, TimeoutError, ValueError) as error:
            log.warning(
                "user group lookup failed; its members may not press restricted buttons until it succeeds",
                extra={"usergroup": usergroup, "error": f"{type(error).__name__}: {str(error)[:200]}"},
            )
            return None
        members = frozenset(user for user in users if isinstance(user, str))
        self._cache[usergroup] = (now, members)
        return members


class PressGate:
    """Applies a :class:`PressPolicy` to each press, resolving user groups through Slack when it must."""

    def __init__(self, policy: PressPolicy, usergroups: UsergroupMembers | None = None) -> None:
        self.policy = policy
        self.usergroups = usergroups

    @classmethod
    def from_settings(cls, settings: SlackSettings, client: AsyncWebClient) -> PressGate:
        """The gate for the ``SLACK_*`` settings, looking user groups up with ``client``."""
        return cls(PressPolicy.from_settings(settings), UsergroupMembers(client))

    async def refusal(
        self, action: str, kind: ActionKind | None, user_id: str, teams: frozenset[str], channel: str | None
    ) -> Refusal | None:
        """Why this press is refused, or None when it may go ahead (``kind`` None: a button that changes nothing)."""
        place = self.policy.place_refusal(teams, channel)
        if place is not None:
            return Refusal(action, user_id, channel, place[0], place[1])
        if kind not in RESTRICTED_KINDS or not self.policy.restricted or user_id in self.policy.users:
            return None
        groups, lookup = self.policy.usergroups, self.usergroups
        found = await asyncio.gather(*(lookup.members(g) for g in groups)) if lookup else [None] * len(groups)
        if any(members is not None and user_id in members for members in found):
            return None
        unconfirmed = [group for group, members in zip(groups, found, strict=True) if members is None]
        if unconfirmed:
            reason = f"{user_id} is not on SLACK_ALLOWED_USERS and the lookup of user groups {unconfirmed} failed"
            return Refusal(action, user_id, channel, reason, _LOOKUP_FAILED)
        reason = f"{user_id} is not on SLACK_ALLOWED_USERS nor in SLACK_ALLOWED_USERGROUPS"
        return Refusal(action, user_id, channel, reason, _NOT_ON_LIST)
