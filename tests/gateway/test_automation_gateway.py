"""Automations in a real gateway on a real broker: a task that sets a node's field, a `for`
timer and an alarm across a gateway restart, publish_mqtt, backup/restore, and bad input."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeiot_gateway.commands import CommandError
from edgeiot_gateway.gateway import Gateway

from ..servers import Mosquitto
from .harness import PREFIX, ApiClient, NodeSimulator, gateway_config, start_gateway, wait_for

VENT = {
    "id": "vent", "kind": "task", "name": "Vent follows humidity",
    "trigger": {"type": "field", "node": "greenhouse-1", "source": "climate", "field": "humidity"},
    "hysteresis": {"on": {"op": ">", "to": 70}, "off": {"op": "<", "to": 60}},
    "actions": [{"handler": "set_field", "params": {"node": "greenhouse-1", "source": "vent",
                                                    "field": "open", "value": True}}],
}  # fmt: skip
FROST = {
    "id": "frost", "kind": "task", "name": "Frost", "alarm": {"severity": "critical"},
    "trigger": {"type": "field", "node": "greenhouse-1", "source": "climate",
                "field": "temperature", "on": "update"},
    "conditions": {"op": "<", "to": 2}, "for": 1.0,
    "actions": [{"handler": "publish_mqtt",
                 "params": {"topic": "site/alerts", "payload": "{{ alarm }} {{ value }}"}}],
}  # fmt: skip


def _subscriber(broker: Mosquitto, topic: str) -> tuple[mqtt.Client, list[bytes]]:
    seen: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="alerts")
    client.on_message = lambda _c, _u, message: seen.append(message.payload)
    client.connect(broker.host, broker.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    return client, seen


async def test_a_task_sets_a_node_field(
    gateway: Gateway, api: ApiClient, node: NodeSimulator
) -> None:
    node.announce()
    await wait_for(lambda: "greenhouse-1" in gateway.processor.nodes, what="node")
    result = await api.command("automation_set", definition=VENT)
    assert result["success"], result
    node.state("climate", humidity=75)
    topic, payload = await node.next_command()
    assert (topic, payload) == (node.topic("set", "vent", "open"), {"v": 1, "value": True})
    node.state("climate", humidity=65)  # inside the hysteresis band: nothing new
    node.state("climate", humidity=80)
    history = await api.command("automation_history", id="vent")
    assert [run["result"] for run in history["result"]["runs"]] == ["ok"]
    assert node.commands.empty()


async def test_for_and_alarm_survive_a_restart(
    tmp_path: Path, mosquitto: Mosquitto, node: NodeSimulator
) -> None:
    config = gateway_config(tmp_path / "gw", mosquitto)
    alerts, seen = _subscriber(mosquitto, "site/alerts")
    try:
        await _restarts(config, node, seen)
    finally:
        alerts.loop_stop()
        alerts.disconnect()


async def _restarts(config: dict[str, Any], node: NodeSimulator, seen: list[bytes]) -> None:
    gateway = await start_gateway(config)
    try:
        api = await ApiClient.of(gateway)
        node.announce()
        await wait_for(lambda: "greenhouse-1" in gateway.processor.nodes, what="node")
        assert (await api.command("automation_set", definition=FROST))["success"]
        node.state("climate", temperature=1.0)
        await wait_for(lambda: gateway.automations.engine.tasks["frost"].hold_deadline, what="for")
        await api.close()
    finally:
        await gateway.stop()
    assert seen == []  # stopped within the `for`

    gateway = await start_gateway(config)
    try:
        # The timer goes on after the restart and raises the alarm with the value it had.
        await wait_for(lambda: seen == [b"raised 1.0"], what="alarm raised after restart")
        api = await ApiClient.of(gateway)
        alarms = (await api.command("alarm_list"))["result"]["alarms"]
        assert [(a["id"], a["active"], a["acknowledged"]) for a in alarms] == [
            ("frost", True, False)
        ]
        await api.command("alarm_acknowledge", id="frost")
        await api.close()
    finally:
        await gateway.stop()

    gateway = await start_gateway(config)
    try:
        api = await ApiClient.of(gateway)
        [alarm] = (await api.command("alarm_list"))["result"]["alarms"]
        assert (alarm["active"], alarm["acknowledged"]) == (True, True)
        node.state("climate", temperature=5.0)
        await wait_for(lambda: seen == [b"raised 1.0", b"cleared 5.0"], what="alarm cleared")
        runs = (await api.command("automation_history", id="frost"))["result"]["runs"]
        assert [r["trigger"].get("alarm") for r in runs] == ["raised", "cleared"]
        await api.close()
    finally:
        await gateway.stop()


async def test_backup_and_restore_carry_automations(gateway: Gateway, api: ApiClient) -> None:
    await api.command("start_listening")
    await api.command("automation_set", definition=VENT)
    backup = (await api.command("backup"))["result"]["backup"]
    assert [a["id"] for a in backup["automations"]] == ["vent"]
    await api.command("automation_delete", id="vent")
    await api.command("automation_set", definition=FROST)

    bad = backup | {"automations": [*backup["automations"], {"id": "x", "kind": "task"}]}
    refused = await api.command("restore", backup=bad)
    assert refused["error_code"] == "invalid_backup"
    assert refused["message"].startswith("automations[1]: trigger: expected an object")
    assert list(gateway.automations.definitions) == ["frost"]  # nothing changed

    twice = backup | {"automations": backup["automations"] * 2}
    assert (await api.command("restore", backup=twice))["message"] == (
        "automations[1]: id used twice"
    )
    restored = await api.command("restore", backup=backup)
    assert restored["result"] == {"nodes": 0, "automations": 1}
    # Listeners forget what the restore dropped.
    await api.wait_event(lambda e: e["event"] == "automation removed" and e["id"] == "frost")
    assert list(gateway.automations.definitions) == ["vent"]


async def test_state_dump_and_runs_carry_a_schedules_next_run(api: ApiClient) -> None:
    """The dump lists the automations with their state; a schedule's state and its runs
    say when it runs next (tasks have no next_run)."""
    hourly = {"id": "hourly", "kind": "schedule", "schedule": {"every": 3600},
              "actions": [{"handler": "notify", "params": {"message": "ran"}}]}  # fmt: skip
    await api.command("automation_set", definition=hourly)
    await api.command("automation_set", definition=VENT)
    state = (await api.command("start_listening"))["result"]["state"]
    automations = {a["id"]: a for a in state["automations"]}
    planned = automations["hourly"]["state"]["next_run"]
    assert planned % 3600 == 0
    assert "next_run" not in automations["vent"]["state"]
    await api.command("automation_run", id="hourly")
    run = await api.wait_event(lambda e: e["event"] == "automation run")
    assert (run["id"], run["run"]["result"], run["next_run"]) == ("hourly", "ok", planned)
    await api.command("automation_enable", id="hourly", enabled=False)
    disabled = (await api.command("automation_get", id="hourly"))["result"]["automation"]
    assert disabled["state"]["next_run"] is None


async def test_bad_definitions_and_ids(api: ApiClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (VENT | {"mode": "once"}, "mode: expected one of single, restart, queued, parallel"),
        (VENT | {"actions": [{"handler": "sms"}]}, "actions[0]: unknown handler 'sms'"),
        (VENT | {"conditions": {"op": "==", "to": {"deep": [1]}}}, "conditions.to: expected"),
        ({"id": "../../etc", "kind": "task"}, "id: expected 1-64 of a-z, 0-9, _ and -"),
    ]
    for definition, message in cases:
        result = await api.command("automation_set", definition=definition)
        assert result["error_code"] == "invalid_definition", result
        assert result["message"].startswith(message), result["message"]
    for command in ("automation_get", "automation_delete", "automation_run", "alarm_acknowledge"):
        result = await api.command(command, id="nope")
        assert result["error_code"] == "not_found", (command, result)
    listing = await api.command("automation_list")
    assert listing["result"] == {"automations": []}


async def test_a_stored_definition_that_no_longer_compiles(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = gateway_config(tmp_path / "gw", mosquitto)
    gateway = await start_gateway(config)
    await gateway.automations.set(VENT)
    await gateway.stop()
    # A plugin handler disappeared: the stored definition names a handler nobody registers.
    broken = VENT | {"id": "plugin", "actions": [{"handler": "sms", "params": {}}]}
    gateway = Gateway(gateway.config)
    await gateway.automations.storage.open()
    await gateway.automations.storage.put(broken)
    await gateway.automations.storage.close()
    gateway = await start_gateway(config)
    try:
        api = await ApiClient.of(gateway)
        listed = {a["id"]: a["state"] for a in (await api.command("automation_list"))["result"]
                  ["automations"]}  # fmt: skip
        assert listed["vent"]["error"] is None
        assert listed["plugin"]["error"].startswith("actions[0]: unknown handler 'sms'")
        run = await api.command("automation_run", id="plugin")
        assert run["error_code"] == "invalid_value"
        await api.close()
    finally:
        await gateway.stop()


def test_topics_are_under_the_prefix() -> None:
    assert PREFIX == "edgeiot/v1"
    assert json.loads(json.dumps(FROST)) == FROST


async def test_the_state_saver_survives_a_failing_database(
    gateway: Gateway, api: ApiClient, node: NodeSimulator
) -> None:
    """A run-state write that fails (the table is gone) is a visible problem, not a dead loop;
    once the table is back the state is saved again."""
    node.announce()
    await wait_for(lambda: "greenhouse-1" in gateway.processor.nodes, what="node")
    await api.command("automation_set", definition=VENT)
    path = gateway.config.data_dir / "automation.db"
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE run_state")
    node.state("climate", humidity=75)  # a run: its state is due to be saved
    await wait_for(
        lambda: [p["loop"] for p in gateway.health.problems()] == ["automation state"],
        what="the failing save reported",
    )
    assert "run_state" in gateway.health.problems()[0]["error"]
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE run_state (id TEXT PRIMARY KEY, state TEXT NOT NULL)")
    await wait_for(lambda: gateway.health.problems() == [], what="the saver recovered")
    with sqlite3.connect(path) as db:
        saved = dict(db.execute("SELECT id, state FROM run_state"))
    assert json.loads(saved["vent"])["history"][0]["result"] == "ok"


async def test_create_and_update_check_the_id_and_its_kind(
    gateway: Gateway, api: ApiClient
) -> None:
    created = await api.command("automation_set", definition=VENT, create=True)
    assert created["success"], created
    again = await api.command("automation_set", definition=VENT, create=True)
    assert again["error_code"] == "already_exists", again
    updated = await api.command("automation_set", definition=VENT | {"max": 3}, create=False)
    assert updated["result"]["automation"]["max"] == 3
    missing = await api.command("automation_set", definition=VENT | {"id": "x"}, create=False)
    assert missing["error_code"] == "not_found", missing
    forward = {"id": "vent", "kind": "forward", "from": "a.b.c", "to": "d.e.f"}
    wrong = await api.command("automation_set", definition=forward, create=False)
    assert (wrong["error_code"], wrong["message"]) == (
        "wrong_kind",
        "'vent' is a task, not a forward",
    )
    for command in ("automation_get", "automation_run", "automation_delete"):
        result = await api.command(command, id="vent", kind="schedule")
        assert result["error_code"] == "wrong_kind", (command, result)
    assert (await api.command("automation_get", id="vent", kind="task"))["success"]
    assert (await api.command("automation_delete", id="vent", kind="task"))["success"]
    twin = VENT | {"id": "twin"}
    both = await asyncio.gather(  # the id check and the write are one step
        gateway.automations.set(twin, create=True),
        gateway.automations.set(twin, create=True),
        return_exceptions=True,
    )
    refused = [r for r in both if isinstance(r, CommandError)]
    assert [r.code for r in refused] == ["already_exists"], both


async def test_check_references_names_the_unknown_part(
    gateway: Gateway, api: ApiClient, node: NodeSimulator
) -> None:
    node.announce()
    await wait_for(lambda: "greenhouse-1" in gateway.processor.nodes, what="node")
    humidity = {"field": "greenhouse-1.climate.humidity"}
    typo, nowhere = {"field": "greenhouse-1.vent.positon"}, {"field": "a.b.c"}
    reboot = {"handler": "node_action", "params": {"node": "gh", "action": "reboot"}}
    set_open = VENT["actions"][0]
    cases: list[tuple[dict[str, Any], str]] = [
        (VENT | {"conditions": [{"op": "<", "to": 5},
                                {"value": typo, "op": ">", "to": 1}]},
         "conditions[1].value.field: unknown field greenhouse-1.vent.positon"),
        (VENT | {"trigger": VENT["trigger"] | {"node": "greenhouse-9"}},
         "trigger: unknown node greenhouse-9"),
        (VENT | {"hysteresis": {"on": {"age": "greenhouse-1.clim.humidity", "op": ">", "to": 1},
                                "off": {"op": "<", "to": 1}}},
         "hysteresis.on.age: unknown source greenhouse-1.clim"),
        (VENT | {"conditions": {"not": {"any": [{"value": humidity, "op": ">", "to": 1},
                                                {"value": nowhere, "op": ">", "to": 1}]}}},
         "conditions.not.any[1].value.field: unknown node a"),
        (VENT | {"actions": [set_open, {"handler": "set_field", "params": {
            "node": "greenhouse-1", "source": "climate", "field": "humidity", "value": 1}}]},
         "actions[1].params: field greenhouse-1.climate.humidity is read-only"),
        (VENT | {"actions": [reboot]},
         "actions[0].params.node: unknown node gh"),
        ({"id": "f", "kind": "forward", "from": "greenhouse-1.climate.humidty",
          "to": "greenhouse-1.vent.position"}, "from: unknown field greenhouse-1.climate.humidty"),
        ({"id": "f", "kind": "forward", "from": "greenhouse-1.climate.humidity",
          "to": ["greenhouse-1.vent.position", "greenhouse-1.climate.temperature"]},
         "to[1]: field greenhouse-1.climate.temperature is read-only"),
    ]  # fmt: skip
    for definition, message in cases:
        result = await api.command("automation_set", definition=definition, check_references=True)
        assert (result.get("error_code"), result.get("message")) == (
            "invalid_definition", message,
        ), result  # fmt: skip
    good = VENT | {
        "trigger": {"type": "field", "node": "greenhouse-*", "source": "*", "field": "humidity"},
        "conditions": {"all": [{"value": humidity, "op": ">", "to": 1},
                               {"age": "greenhouse-1.climate.temperature", "op": "<", "to": 60}]},
    }  # fmt: skip
    assert (await api.command("automation_set", definition=good, check_references=True))["success"]
    event = VENT | {"id": "press", "trigger": {"type": "event", "node": "greenhouse-1",
                                               "source": "button", "event": "pressed"}}  # fmt: skip
    assert (await api.command("automation_set", definition=event, check_references=True))["success"]
    unchecked = VENT | {"id": "later", "trigger": VENT["trigger"] | {"node": "greenhouse-2"}}
    assert (await api.command("automation_set", definition=unchecked))["success"]
