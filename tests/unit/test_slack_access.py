"""Who may press an alert's buttons, and what a refused or unreadable press leaves behind.

Presses go through :class:`SlackInteractivity` as Socket Mode delivers them;
the Web API calls (user group lookups, the ephemeral answers) go to the local
Slack stub over HTTP.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from crisiswatch.alerter.access import PressGate, PressPolicy, UsergroupMembers
from crisiswatch.alerter.alert_blocks import ButtonValue
from crisiswatch.alerter.delivery import bot_client
from crisiswatch.alerter.interactivity import CopyRequest, SlackInteractivity, dead_letter_record
from crisiswatch.alerter.settings import SlackSettings
from crisiswatch.contracts.schemas import ActionKind, IncidentAction, Severity
from crisiswatch.runtime.broker import free_port

from ..slack_stub import SlackStub

PAYLOAD = json.loads((Path(__file__).parents[1] / "fixtures" / "slack" / "block_actions.json").read_text())
VALUE = ButtonValue(incident="voltcell-20260302T0400", brand="voltcell").model_dump_json()
REPLY = ButtonValue(incident="voltcell-20260302T0400", brand="voltcell", reply="We are on it.").model_dump_json()
TEAM, CHANNEL = "T0TEAM001", "C0CRISIS"
ON_DUTY = PressPolicy(TEAM, frozenset({CHANNEL}), users=frozenset({"U0ANN0001"}), usergroups=("S0DUTY",))


def _press(kind: str, user: str = "U0ANN0001", team: str = TEAM, channel: str = CHANNEL) -> dict[str, Any]:
    payload = copy.deepcopy(PAYLOAD)
    payload["user"].update({"id": user, "team_id": team})
    payload["team"]["id"] = team
    payload["channel"]["id"] = payload["container"]["channel_id"] = channel
    value = VALUE if kind != "copy-reply-1" else REPLY
    payload["actions"][0].update({"action_id": f"crisiswatch:{kind}", "value": value})
    return payload


def _count(action: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("crisiswatch_alerter_actions_total", {"action": action, "outcome": outcome}) or 0


@pytest.fixture
def slack() -> Iterator[SlackStub]:
    stub = SlackStub().start()
    stub.usergroups = {"S0DUTY": ["U0CAT0003"]}
    yield stub
    stub.stop()


class _Socket:
    """Stands in for slack_sdk's Socket Mode client: keeps the envelope ids it acknowledges."""

    def __init__(self) -> None:
        self.acks: list[str] = []

    async def send_socket_mode_response(self, response: SocketModeResponse) -> None:
        self.acks.append(response.envelope_id)


@pytest.fixture
def pressed(slack: SlackStub) -> Any:
    """Deliver payloads to an interactivity service behind ``policy``; what it published, rejected and acked."""

    def deliver(policy: PressPolicy, *payloads: dict[str, Any], api_url: str = slack.api_url) -> dict[str, Any]:
        published: list[IncidentAction] = []
        rejected: list[tuple[str, bytes]] = []
        socket = _Socket()

        async def publish(action: IncidentAction) -> None:
            published.append(action)

        async def reject(reason: str, payload: bytes) -> None:
            rejected.append((reason, payload))

        async def run() -> None:
            client = bot_client("xoxb-test", api_url)
            gate = PressGate(policy, UsergroupMembers(client))
            service = SlackInteractivity("xapp-test", client, publish, reject, gate)
            for number, payload in enumerate(payloads):
                request = SocketModeRequest(type="interactive", envelope_id=f"e-{number}", payload=payload)
                await service.on_request(cast(AsyncBaseSocketModeClient, socket), request)

        asyncio.run(run())
        return {"published": published, "rejected": rejected, "acks": socket.acks}

    return deliver


def test_presses_from_another_team_or_channel_are_refused_told_counted_and_dead_lettered(
    pressed: Any, slack: SlackStub
) -> None:
    policy = PressPolicy(TEAM, frozenset({CHANNEL}))
    before = _count("resolve", "not_allowed")
    result = pressed(
        policy,
        _press("resolve", team="T0OTHER01"),
        _press("resolve", channel="C0ELSEWHERE"),
        _press("resolve", team="T0OTHER01") | {"team": {"id": TEAM}},  # a guest from another workspace
        _press("resolve") | {"team": None, "user": {"id": "U0ANN0001"}},  # no team named at all
        _press("resolve"),
    )
    assert [a.user_id for a in result["published"]] == ["U0ANN0001"], "only the press from the team and channel"
    assert result["acks"] == ["e-0", "e-1", "e-2", "e-3", "e-4"], "refused presses are handled, not redelivered"
    assert _count("resolve", "not_allowed") - before == 4
    reasons = [reason for reason, _ in result["rejected"]]
    assert len(reasons) == 4 and all(r.startswith("press not allowed") for r in reasons)
    assert "T0OTHER01" in reasons[0] and "C0ELSEWHERE" in reasons[1] and "T0OTHER01" in reasons[2]
    told = slack.messages("chat.postEphemeral")
    assert [(c.payload["user"], c.payload["channel"]) for c in told] == [
        ("U0ANN0001", CHANNEL),
        ("U0ANN0001", "C0ELSEWHERE"),
        ("U0ANN0001", CHANNEL),
        ("U0ANN0001", CHANNEL),
    ]
    assert all("Not allowed" in c.payload["text"] for c in told)


def test_without_a_team_id_every_press_is_refused(pressed: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLACK_TEAM_ID", "SLACK_ALLOWED_USERS", "SLACK_ALLOWED_USERGROUPS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLACK_CHANNEL", CHANNEL)
    policy = PressPolicy.from_settings(SlackSettings())
    assert policy.team_id is None and policy.channels == {CHANNEL}
    result = pressed(policy, _press("acknowledge"), _press("copy-reply-1"))
    assert result["published"] == [] and len(result["rejected"]) == 2
    assert "SLACK_TEAM_ID" in result["rejected"][0][0]


def test_the_policy_covers_every_channel_alerts_are_routed_to() -> None:
    settings = SlackSettings(
        channel="C0MAIN",
        channel_by_brand={"voltcell": "C0VOLT"},
        channel_by_severity={Severity.CRITICAL: "C0WAR"},
        fallback_channel="C0SPARE",
        team_id=TEAM,
    )
    assert PressPolicy.from_settings(settings).channels == {"C0MAIN", "C0VOLT", "C0WAR", "C0SPARE"}
    with pytest.raises(ValueError, match="pattern"):
        SlackSettings(allowed_users=["ann.duty"])  # a name, which no press carries, would never match


def test_only_people_on_the_allow_lists_may_snooze_resolve_or_close(pressed: Any, slack: SlackStub) -> None:
    result = pressed(
        ON_DUTY,
        _press("resolve", user="U0ANN0001"),  # on SLACK_ALLOWED_USERS
        _press("not_a_crisis", user="U0CAT0003"),  # in the S0DUTY user group
        _press("snooze", user="U0EVE0666"),  # neither
        _press("resolve", user="U0EVE0666"),
        _press("not_a_crisis", user="U0EVE0666"),
        _press("acknowledge", user="U0EVE0666"),  # open to the team in the alert channels
        _press("assign", user="U0EVE0666"),
        _press("copy-reply-1", user="U0EVE0666"),
    )
    assert [(a.kind, a.user_id) for a in result["published"]] == [
        (ActionKind.RESOLVE, "U0ANN0001"),
        (ActionKind.NOT_A_CRISIS, "U0CAT0003"),
        (ActionKind.ACKNOWLEDGE, "U0EVE0666"),
        (ActionKind.ASSIGN, "U0EVE0666"),
    ]
    assert [reason.split(":")[0] for reason, _ in result["rejected"]] == ["press not allowed"] * 3
    told = [c.payload for c in slack.messages("chat.postEphemeral")]
    assert [p["user"] for p in told] == ["U0EVE0666"] * 4
    assert [p["text"].startswith(":no_entry: Not allowed") for p in told] == [True, True, True, False], (
        "three refusals, then the copied reply"
    )
    assert len(slack.messages("usergroups.users.list")) == 1, "members are looked up once and kept for the TTL"


@pytest.mark.slow  # waits out real retry backoffs
def test_a_failed_usergroup_lookup_grants_nothing_and_the_next_press_asks_again(pressed: Any, slack: SlackStub) -> None:
    slack.fail_next(200, method="usergroups.users.list", error="missing_scope")
    unknown = PressPolicy(TEAM, frozenset({CHANNEL}), usergroups=("S0GONE",))
    result = pressed(ON_DUTY, _press("resolve", user="U0CAT0003"), _press("resolve", user="U0CAT0003"))
    assert [a.user_id for a in result["published"]] == ["U0CAT0003"], "refused while Slack could not say; then let in"
    ((reason, _),) = result["rejected"]
    assert "lookup" in reason and "S0DUTY" in reason
    assert "try again" in slack.messages("chat.postEphemeral")[0].payload["text"].lower()
    assert pressed(unknown, _press("snooze", user="U0CAT0003"))["published"] == [], "no_such_subteam grants nothing"
    nobody = f"http://127.0.0.1:{free_port()}/api/"
    gone = pressed(ON_DUTY, _press("snooze", user="U0CAT0003"), _press("acknowledge", user="U0CAT0003"), api_url=nobody)
    assert [a.kind for a in gone["published"]] == [ActionKind.ACKNOWLEDGE], "Slack unreachable: refused, no crash"
    assert gone["acks"] == ["e-0", "e-1"]


def test_group_members_are_kept_for_the_ttl_then_read_again(slack: SlackStub) -> None:
    async def members_before_and_after_a_change(ttl_s: float) -> tuple[frozenset[str] | None, ...]:
        lookup = UsergroupMembers(bot_client("xoxb-test", slack.api_url), ttl_s=ttl_s)
        slack.usergroups = {"S0DUTY": ["U0CAT0003"]}
        before = await lookup.members("S0DUTY")
        slack.usergroups = {"S0DUTY": ["U0DAN0004"]}
        return before, await lookup.members("S0DUTY")

    assert asyncio.run(members_before_and_after_a_change(60)) == ({"U0CAT0003"}, {"U0CAT0003"})
    assert asyncio.run(members_before_and_after_a_change(0)) == ({"U0CAT0003"}, {"U0DAN0004"}), (
        "someone taken off the group loses the restricted buttons once the cache expires"
    )
    assert len(slack.messages("usergroups.users.list")) == 3


def test_dead_letters_of_interactions_keep_ids_and_buttons_but_no_secrets(pressed: Any) -> None:
    broken = _press("assign") | {"actions": [{"action_id": "crisiswatch:assign", "value": "{broken"}]}
    (reason, payload), *_ = pressed(ON_DUTY, broken)["rejected"]
    assert "crisiswatch:assign" in reason
    kept = json.loads(payload)
    assert kept == {
        "type": "block_actions",
        "team_id": TEAM,
        "user_id": "U0ANN0001",
        "user_team_id": TEAM,
        "channel_id": CHANNEL,
        "actions": [{"action_id": "crisiswatch:assign", "value": "{broken"}],
    }
    for field in ("response_url", "token", "trigger_id", "hooks.slack.com", "verification-token"):
        assert field not in payload.decode()
    hostile = {"type": 7, "user": "U0X", "team": [], "channel": {"id": {"x": 1}}, "actions": [3, {"value": None}]}
    assert json.loads(dead_letter_record(hostile))["actions"] == [
        {"action_id": None, "value": None},
        {"action_id": None, "value": None},
    ]


def test_a_copied_reply_cannot_carry_slack_markup(slack: SlackStub) -> None:
    async def copy_reply() -> None:
        client = bot_client("xoxb-test", slack.api_url)
        service = SlackInteractivity("xapp-test", client, _never, _never, PressGate(ON_DUTY))
        await service.send_copy(
            CopyRequest("U0ANN0001", CHANNEL, "i-1", "Fees & refunds <!channel> <https://x.io|here>")
        )

    asyncio.run(copy_reply())
    (sent,) = slack.messages("chat.postEphemeral")
    escaped = "Fees &amp; refunds &lt;!channel&gt; &lt;https://x.io|here&gt;"
    assert sent.payload["text"] == escaped and sent.payload["blocks"][1]["text"]["text"] == escaped


async def _never(*_: object) -> None:
    raise AssertionError("not called")
