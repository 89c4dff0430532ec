"""Lifecycle buttons: Slack's payloads read, actions applied to the detector's state, the alert updated.

The end-to-end test runs the alerter in bot mode with Socket Mode against the
local Slack stub and the real broker, and presses the buttons with payloads of
the shape Slack sends (``fixtures/slack/block_actions.json``).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import html
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from crisiswatch.alerter.access import PressGate, PressPolicy
from crisiswatch.alerter.alert_blocks import ACTION_PREFIX, ButtonValue, compose_blocks
from crisiswatch.alerter.delivery import Routes, SlackBotNotifier, bot_client
from crisiswatch.alerter.interactivity import SlackInteractivity, read_presses
from crisiswatch.contracts.schemas import (
    ActionKind,
    DeadLetter,
    Incident,
    IncidentAction,
    IncidentEventType,
    Severity,
)
from crisiswatch.detection.actions import ActionOutcome, apply_action
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.detection.lifecycle import step
from crisiswatch.detection.state import DetectorState
from crisiswatch.detection.windows import Bucket

from ..conftest import Pipeline, metric_value, produce, wait_until
from ..factories import composed, incident_action, storm_then_calm
from ..slack_stub import SlackStub

PAYLOAD = json.loads((Path(__file__).parents[1] / "fixtures" / "slack" / "block_actions.json").read_text())
CONFIG = DetectorConfig(bucket=timedelta(minutes=5))
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _payload(
    action_id: str,
    value: str,
    user: str = "U0ANN0001",
    action_ts: str = "1774000123.456789",
    channel: str = "C0CRISIS",
    team: str = "T0TEAM001",
) -> dict:
    """The fixture's press, by ``user`` of ``team`` on a message in ``channel``."""
    payload = copy.deepcopy(PAYLOAD)
    payload["user"].update({"id": user, "team_id": team})
    payload["team"]["id"] = team
    payload["channel"]["id"] = payload["container"]["channel_id"] = channel
    payload["actions"][0].update({"action_id": action_id, "value": value, "action_ts": action_ts})
    return payload


def _open_incident() -> DetectorState:
    """Four calm hours, then a storm that grows until the detector opens an incident (and no further)."""
    calm = [1, 0, 2, 1, 1, 0, 1, 2] * 6
    state = DetectorState.fresh("voltcell", CONFIG)
    for i, negative in enumerate([*calm, 12, 15, 20, 25, 30]):
        state, _ = step(
            state, Bucket(start=T0 + i * CONFIG.bucket, negative=negative, total=max(8, 4 * negative)), CONFIG
        )
        if state.incident is not None:
            return state
    raise AssertionError("the storm opened no incident")


def _action(state: DetectorState, kind: ActionKind, user: str = "U0ANN0001", minute: int = 0) -> IncidentAction:
    assert state.incident is not None
    return incident_action(
        state.incident.incident_id, state.brand, kind, user, acted_at=T0 + timedelta(hours=5, minutes=minute)
    )


def test_a_block_actions_payload_from_slack_becomes_an_incident_action() -> None:
    value = ButtonValue(incident="voltcell-20260302T0400", brand="voltcell").model_dump_json()
    presses = read_presses(_payload("crisiswatch:acknowledge", value), now=T0)
    assert presses.problems == [] and presses.copies == []
    (action,) = presses.actions
    assert action.kind is ActionKind.ACKNOWLEDGE
    assert (action.incident_id, action.brand, action.user_id, action.user_name) == (
        "voltcell-20260302T0400",
        "voltcell",
        "U0ANN0001",
        "ann.duty",
    )
    assert action.acted_at == datetime.fromtimestamp(1774000123.456789, UTC), "the press time is Slack's action_ts"
    assert action.channel == "C0CRISIS"


def test_foreign_buttons_are_ignored_and_unreadable_ones_reported() -> None:
    value = ButtonValue(incident="x", brand="voltcell").model_dump_json()
    assert read_presses(_payload("someone-else:button", value), now=T0).actions == []
    assert read_presses({"type": "view_submission", "view": {}}, now=T0) == read_presses({}, now=T0)
    for action_id, bad_value in (
        ("crisiswatch:acknowledge", "not json"),
        ("crisiswatch:explode", value),
        ("crisiswatch:acknowledge", json.dumps({"incident": "x", "brand": "b" * 500})),
    ):
        presses = read_presses(_payload(action_id, bad_value), now=T0)
        assert presses.actions == [] and len(presses.problems) == 1, (action_id, bad_value)
    injected = read_presses(_payload("crisiswatch:assign", value, user="<!channel>"), now=T0)
    assert injected.actions == [] and "user_id" in injected.problems[0], "only Slack ids reach <@...> mentions"
    assert "block_actions" in read_presses({"type": "block_actions"}, now=T0).problems[0]


class _SocketClient:
    """Stands in for the Socket Mode client: notes each envelope it acknowledges in the shared log."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def send_socket_mode_response(self, response: SocketModeResponse) -> None:
        self.log.append(f"ack {response.envelope_id}")


def test_a_not_a_crisis_press_is_published_as_that_action_before_the_envelope_is_acknowledged() -> None:
    value = ButtonValue(incident="voltcell-20260302T0400", brand="voltcell").model_dump_json()
    published: list[IncidentAction] = []
    log: list[str] = []

    async def publish(action: IncidentAction) -> None:
        published.append(action)
        log.append(f"publish {action.kind.value}")

    async def reject(reason: str, payload: bytes) -> None:
        log.append(f"reject {reason}")

    async def press() -> None:
        gate = PressGate(PressPolicy(team_id="T0TEAM001", channels=frozenset({"C0CRISIS"})))
        service = SlackInteractivity("xapp-test", AsyncWebClient(token="xoxb-test"), publish, reject, gate)
        client = cast(AsyncBaseSocketModeClient, _SocketClient(log))
        for envelope, action_id in (("e-1", "crisiswatch:not_a_crisis"), ("e-2", "crisiswatch:not-a-crisis")):
            request = SocketModeRequest(type="interactive", envelope_id=envelope, payload=_payload(action_id, value))
            await service.on_request(client, request)

    asyncio.run(press())
    (action,) = published
    assert (action.kind, action.incident_id, action.brand, action.user_id) == (
        ActionKind.NOT_A_CRISIS,
        "voltcell-20260302T0400",
        "voltcell",
        "U0ANN0001",
    )
    assert log[:2] == ["publish not_a_crisis", "ack e-1"]
    assert log[2].startswith("reject button 'crisiswatch:not-a-crisis'") and log[3] == "ack e-2", (
        "a misspelt action is dead-lettered, not guessed"
    )


def test_copy_reply_carries_the_reply_to_the_presser() -> None:
    value = ButtonValue(incident="i-1", brand="voltcell", reply="\u200fאנחנו בודקים את התקלה").model_dump_json()
    presses = read_presses(_payload(f"{ACTION_PREFIX}copy-reply-2", value), now=T0)
    (copied,) = presses.copies
    assert (copied.user_id, copied.channel, copied.reply) == ("U0ANN0001", "C0CRISIS", "\u200fאנחנו בודקים את התקלה")
    assert presses.actions == []


def test_acknowledge_assign_and_snooze_change_the_incident_once_each() -> None:
    state = _open_incident()
    revision = state.incident.revision
    state, outcome, (acked,) = apply_action(state, _action(state, ActionKind.ACKNOWLEDGE), CONFIG)
    assert outcome is ActionOutcome.APPLIED
    assert acked.event is IncidentEventType.ACKNOWLEDGED and acked.revision == revision + 1
    assert acked.acknowledged_by == "U0ANN0001" and acked.acted_by == "U0ANN0001"
    assert "negative mentions in the last" in acked.rule, "the alert keeps explaining the numbers"
    again, outcome, events = apply_action(state, _action(state, ActionKind.ACKNOWLEDGE, user="U0BOB0002"), CONFIG)
    assert (outcome, events, again.incident.acknowledged_by) == (ActionOutcome.UNCHANGED, [], "U0ANN0001")

    state, _, (assigned,) = apply_action(state, _action(state, ActionKind.ASSIGN, user="U0BOB0002"), CONFIG)
    assert assigned.assignee == "U0BOB0002" and assigned.acknowledged_by == "U0ANN0001"
    snooze = _action(state, ActionKind.SNOOZE)
    state, _, (snoozed,) = apply_action(state, snooze, CONFIG)
    assert snoozed.snoozed_until == snooze.acted_at + timedelta(hours=1)
    _, outcome, _ = apply_action(state, snooze, CONFIG)
    assert outcome is ActionOutcome.UNCHANGED, "the same press delivered twice snoozes once"
    restored = DetectorState.model_validate(json.loads(json.dumps(state.model_dump(mode="json"))))
    assert restored.incident == state.incident, "what people did survives the changelog"


def test_a_manual_resolution_closes_the_incident_and_later_presses_are_stale() -> None:
    state = _open_incident()
    action = _action(state, ActionKind.RESOLVE, user="U0CAT0003")
    state, outcome, (resolved,) = apply_action(state, action, CONFIG)
    assert outcome is ActionOutcome.APPLIED
    assert resolved.event is IncidentEventType.RESOLVED and resolved.acted_by == "U0CAT0003"
    assert state.incident is None and state.cooldown_until == action.acted_at + CONFIG.cooldown
    _, outcome, events = apply_action(state, action.model_copy(update={"kind": ActionKind.ACKNOWLEDGE}), CONFIG)
    assert (outcome, events) == (ActionOutcome.STALE, [])
    other = _open_incident()
    wrong = action.model_copy(update={"incident_id": "voltcell-19990101T0000"})
    assert apply_action(other, wrong, CONFIG)[1] is ActionOutcome.STALE


def test_not_a_crisis_closes_the_incident_as_a_false_alarm() -> None:
    state = _open_incident()
    action = _action(state, ActionKind.NOT_A_CRISIS, user="U0CAT0003")
    state, outcome, (closed,) = apply_action(state, action, CONFIG)
    assert outcome is ActionOutcome.APPLIED and state.incident is None
    assert closed.event is IncidentEventType.RESOLVED and closed.acted_by == "U0CAT0003"
    assert closed.false_alarm, (
        "PENDING detector change: apply_action must set false_alarm=True on a NOT_A_CRISIS resolution"
    )
    assert apply_action(state, action, CONFIG)[1] is ActionOutcome.STALE, "a redelivered press changes nothing"


def test_interactive_alerts_carry_the_lifecycle_buttons_and_the_state() -> None:
    state = _open_incident()
    opened = _opened_incident(state)
    blocks = [b.to_dict() for b in compose_blocks(opened, interactive=True)]
    actions = next(b for b in blocks if b["type"] == "actions")
    labels = [e["text"]["text"] for e in actions["elements"]]
    assert labels[:5] == ["Acknowledge", "Assign to me", "Snooze 1h", "Resolve", "Not a crisis"]
    assert [label for label in labels if label.startswith("Copy reply")] == ["Copy reply 1", "Copy reply 2"]
    resolve = actions["elements"][3]
    assert resolve["style"] == "danger" and resolve["confirm"]["confirm"]["text"] == "Resolve"
    for element in actions["elements"]:
        value = ButtonValue.model_validate_json(element["value"])
        assert value.incident == opened.incident_id and len(element["value"]) <= 2000
    assert not any(b["type"] == "actions" for b in (x.to_dict() for x in compose_blocks(opened))), "no buttons"

    state, _, (acked,) = apply_action(state, _action(state, ActionKind.ACKNOWLEDGE), CONFIG)
    blocks = [b.to_dict() for b in compose_blocks(acked, interactive=True)]
    text = json.dumps(blocks)
    assert "Acknowledged by <@U0ANN0001>" in text
    actions = next(b for b in blocks if b["type"] == "actions")
    assert "Acknowledge" not in [e["text"]["text"] for e in actions["elements"]]


def _opened_incident(state: DetectorState) -> Incident:
    """The incident's current event, as the alert shows it (via a no-op that the detector would emit)."""
    action = _action(state, ActionKind.ASSIGN, user="U0ZZZ0000")
    _, _, (incident,) = apply_action(state, action, CONFIG)
    return incident.model_copy(update={"event": IncidentEventType.OPENED, "assignee": None})


def test_person_actions_update_the_alert_and_note_the_thread_and_a_snoozed_escalation_is_quiet() -> None:
    slack = SlackStub().start()
    try:
        routes = Routes("C0CRISIS", critical_mention="<!subteam^S0DUTY>")
        notifier = SlackBotNotifier(bot_client("xoxb-test", slack.api_url), routes, interactive=True)
        state = _open_incident()
        opened = _opened_incident(state)
        thread = asyncio.run(notifier.send(composed(opened), None))
        state, _, (acked,) = apply_action(state, _action(state, ActionKind.ACKNOWLEDGE), CONFIG)
        asyncio.run(notifier.send(composed(acked), thread))
        update = slack.messages("chat.update")[-1]
        assert "Acknowledged by <@U0ANN0001>" in json.dumps(update.payload["blocks"])
        note = slack.messages()[-1]
        assert note.payload["thread_ts"] == thread.split(":")[1]
        assert note.payload["text"] == ":eyes: <@U0ANN0001> acknowledged the voltcell incident."

        snooze = incident_action(opened.incident_id, "voltcell", ActionKind.SNOOZE)
        state, _, (snoozed,) = apply_action(state, snooze, CONFIG)
        asyncio.run(notifier.send(composed(snoozed), thread))
        posts = len(slack.messages())
        escalated = snoozed.model_copy(
            update={"event": IncidentEventType.ESCALATED, "severity": Severity.CRITICAL, "acted_by": None}
        )
        asyncio.run(notifier.send(composed(escalated), thread))
        assert len(slack.messages()) == posts, "a snoozed escalation posts nothing new"
        last_update = slack.messages("chat.update")[-1]
        assert "critical" in json.dumps(last_update.payload["blocks"]) and "subteam" not in last_update.payload["text"]
    finally:
        slack.stop()


def _buttons(call: Any) -> dict[str, str]:
    actions = next(b for b in call.payload["blocks"] if b["type"] == "actions")
    return {e["action_id"].removeprefix(ACTION_PREFIX): e["value"] for e in actions["elements"]}


@pytest.mark.pipeline
def test_buttons_pressed_in_slack_change_the_incident_over_socket_mode(pipeline_factory, slack: SlackStub) -> None:
    pipeline: Pipeline = pipeline_factory(
        {
            "SLACK_BOT_TOKEN": "xoxb-actions",
            "SLACK_APP_TOKEN": "xapp-actions",
            "SLACK_CHANNEL": "C0BUTTONS",
            "SLACK_API_URL": slack.api_url,
            "SLACK_TEAM_ID": "T0TEAM001",
            "SLACK_ALLOWED_USERS": '["U0ANN0001"]',
            "SLACK_ALLOWED_USERGROUPS": '["S0DUTY"]',
        }
    )
    slack.usergroups = {"S0DUTY": ["U0CAT0003"]}
    press = functools.partial(_payload, channel="C0BUTTONS")
    pipeline.start("alerter", "run")
    wait_until(lambda: slack.sockets, "the alerter's Socket Mode connection")
    opening, _ = storm_then_calm("voltcell")
    produce(pipeline, pipeline.topics.scored, opening)

    def parent() -> Any:
        return next((c for c in slack.messages() if c.payload.get("channel") == "C0BUTTONS"), None)

    alert = wait_until(parent, "the opening alert", timeout=120)
    buttons = _buttons(alert)
    assert set(buttons) >= {"acknowledge", "assign", "snooze", "resolve", "not_a_crisis", "copy-reply-1"}

    def thread_notes() -> list[str]:
        return [c.payload.get("text", "") for c in slack.messages() if c.payload.get("thread_ts") == alert.ts]

    envelope = slack.press(press("crisiswatch:acknowledge", buttons["acknowledge"], action_ts=f"{time.time():.6f}"))
    wait_until(lambda: any("acknowledged" in n for n in thread_notes()), "the acknowledgement in the thread")
    assert envelope in slack.acks
    update = slack.messages("chat.update")[-1]
    assert update.payload["ts"] == alert.ts and "Acknowledged by <@U0ANN0001>" in json.dumps(update.payload["blocks"])

    slack.press(press("crisiswatch:acknowledge", buttons["acknowledge"], user="U0BOB0002"), retry_attempt=1)
    pipeline.wait_for_metric(
        "alerter", "crisiswatch_alerter_actions_total", 'action="acknowledge",outcome="unchanged"', 1
    )

    slack.press(press("crisiswatch:copy-reply-1", buttons["copy-reply-1"]))
    ephemeral = wait_until(lambda: slack.messages("chat.postEphemeral"), "the copied reply")[0]
    assert ephemeral.payload["user"] == "U0ANN0001"
    assert html.unescape(ephemeral.payload["text"]) == ButtonValue.model_validate_json(buttons["copy-reply-1"]).reply

    for refused, (user, team, channel) in {
        "resolve": ("U0EVE0666", "T0TEAM001", "C0BUTTONS"),  # in the team and channel, on no allow-list
        "snooze": ("U0ANN0001", "T0OTHER01", "C0BUTTONS"),  # an allowed id, from another workspace
        "assign": ("U0ANN0001", "T0TEAM001", "C0ELSEWHERE"),  # a message outside the alert channels
    }.items():
        slack.press(_payload(f"crisiswatch:{refused}", buttons[refused], user=user, team=team, channel=channel))
        pipeline.wait_for_metric(
            "alerter", "crisiswatch_alerter_actions_total", f'action="{refused}",outcome="not_allowed"', 1
        )
    answers = wait_until(
        lambda: len(slack.messages("chat.postEphemeral")) >= 4 and slack.messages("chat.postEphemeral")[1:],
        "the three refusals, told to the pressers",
    )
    told = [(c.payload["user"], c.payload["text"]) for c in answers]
    assert [user for user, _ in told] == ["U0EVE0666", "U0ANN0001", "U0ANN0001"]
    assert all(text.startswith(":no_entry: Not allowed") for _, text in told)

    slack.press(press("crisiswatch:not_a_crisis", buttons["not_a_crisis"], user="U0CAT0003"))
    closing = wait_until(
        lambda: [n for n in thread_notes() if n.startswith((":no_entry_sign: <@U0CAT0003>", ":white_check_mark:"))],
        "the closing note in the thread",
    )
    assert closing == [
        ":no_entry_sign: <@U0CAT0003> marked the voltcell incident as not a crisis; "
        "the detector will treat a surge of this size as normal."
    ], "PENDING detector change: the resolution of a Not a crisis press carries false_alarm=True"
    slack.press(press("crisiswatch:resolve", buttons["resolve"]))
    pipeline.wait_for_metric("alerter", "crisiswatch_alerter_actions_total", 'action="resolve",outcome="stale"', 1)
    slack.press(press("crisiswatch:snooze", buttons["snooze"]))
    pipeline.wait_for_metric("alerter", "crisiswatch_alerter_actions_total", 'action="snooze",outcome="stale"', 1)
    slack.press(press("crisiswatch:assign", "{broken"))
    letters = [DeadLetter.model_validate_json(v) for v in pipeline.read(pipeline.topics.dlq, 4)]
    assert any(letter.source == "slack.socket_mode" and "crisiswatch:assign" in letter.reason for letter in letters)
    assert sum(letter.reason.startswith("press not allowed") for letter in letters) == 3
    for letter in letters:
        kept = json.loads(letter.payload)
        assert "response_url" not in letter.payload and "verification-token" not in letter.payload
        assert kept["actions"][0]["action_id"].startswith("crisiswatch:") and kept["team_id"] and kept["channel_id"]

    events = [Incident.model_validate_json(v) for v in pipeline.read(pipeline.topics.alerts, 3)]
    kinds = [(e.event, e.acted_by) for e in events]
    assert kinds[0] == (IncidentEventType.OPENED, None)
    assert (IncidentEventType.ACKNOWLEDGED, "U0ANN0001") in kinds
    assert kinds[-1] == (IncidentEventType.RESOLVED, "U0CAT0003")
    assert events[-1].false_alarm, "PENDING detector change: a Not a crisis press resolves with false_alarm=True"
    alerter = pipeline.metrics("alerter")
    assert metric_value(alerter, "crisiswatch_alerter_actions_total", 'action="not_a_crisis",outcome="applied"') == 1
    assert metric_value(alerter, "crisiswatch_alerter_false_alarms_total", 'brand="voltcell"') == 1, (
        "PENDING app.py change: FALSE_ALARMS counts the false-alarm resolution"
    )
    opened = [c for c in slack.messages() if c.payload.get("channel") == "C0BUTTONS" and "thread_ts" not in c.payload]
    assert len(opened) == 1, "one alert, one thread"
