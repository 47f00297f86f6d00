"""firmware_install's job runner on a real gateway, with a provider plugin defined here.

The provider ("install-test", registered as a plugin would be) announces one node and updates
it as its `mode` option says, so the runner's paths that no network provider takes on purpose
(a crash, a job still running when the gateway stops) are exercised.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from edgeiot_gateway.commands import CommandError
from edgeiot_gateway.gateway import Gateway
from edgeiot_gateway.messages import NodeAnnounced
from edgeiot_gateway.models import Node, Value, node_from_dict
from edgeiot_gateway.providers import Provider, register_provider
from edgeiot_gateway.updates import downloads
from edgeiot_gateway.updates.jobs import FINISHED_KEPT

from .firmware_files import esp_image
from .harness import ApiClient, gateway_config, start_gateway, wait_for
from .test_firmware_library import upload

type Progress = Callable[[str, int, str | None], None]


class _Provider(Provider):
    """Announces node `<name>-1`; connected from the start."""

    kind = "install-test"

    @property
    def connected(self) -> bool:
        return True

    async def start(self) -> None:
        node = node_from_dict({"id": f"{self.name}-1", "provider": self.name, "sources": []})
        self.context.submit(NodeAnnounced(node), "test")

    async def stop(self) -> None:
        pass

    async def set_field(self, node: Node, source_id: str, field_id: str, value: Value) -> None:
        raise AssertionError("not used")

    async def node_action(self, node: Node, action: str) -> None:
        raise AssertionError("not used")


@register_provider
class _Installing(_Provider):
    """`mode`: "crash" (raises a bug), "hang" (never ends), "ok" (reports done itself)."""

    kind = "install-test"
    progress: Progress | None = None

    async def install_firmware(
        self, node: Node, entry: dict[str, Any], path: Path, progress: Progress
    ) -> None:
        self.progress = progress
        progress("applying", 50, None)
        match self.options["mode"]:
            case "crash":
                raise RuntimeError("boom")
            case "hang":
                await asyncio.Event().wait()
        progress("done", 100, None)  # the runner reports the end itself, once


@register_provider
class _NotInstalling(_Provider):
    kind = "no-install-test"


@pytest.fixture
async def gateway(tmp_path: Path, socket_enabled: None) -> AsyncIterator[Gateway]:
    providers = [{"type": "install-test", "name": mode, "mode": mode}
                 for mode in ("crash", "hang", "ok")]  # fmt: skip
    providers.append({"type": "no-install-test", "name": "plain"})
    gw = await start_gateway(gateway_config(tmp_path / "gw", None, providers=providers))
    yield gw
    await gw.stop()


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[ApiClient]:
    api = await ApiClient.of(gateway)
    assert (await api.command("start_listening"))["success"]
    yield api
    await api.close()


async def _install(api: ApiClient, node_id: str, firmware_id: str) -> dict[str, Any]:
    answer = await api.command("firmware_install", node_id=node_id, firmware_id=firmware_id)
    assert answer["success"], answer
    return await api.wait_event(
        lambda e: e["event"] == "firmware progress" and e["job_id"] == answer["result"]["job_id"]
        and e["stage"] in ("done", "failed")
    )  # fmt: skip


async def test_job_ends_once_and_late_reports_are_ignored(
    gateway: Gateway, client: ApiClient
) -> None:
    entry = (await upload(client, esp_image("esp32c3"), target="esp32c3"))["result"]
    done = await _install(client, "ok-1", entry["id"])
    assert (done["kind"], done["node_id"], done["percent"]) == ("install-test", "ok-1", 100)
    failed = await _install(client, "crash-1", entry["id"])
    assert failed["error"] == "RuntimeError('boom')"
    provider = gateway.providers["crash"]
    assert isinstance(provider, _Installing)
    assert provider.progress is not None
    before = gateway.jobs.list()
    provider.progress("applying", 70, None)  # after the job ended: nothing changes
    assert gateway.jobs.list() == before
    ends = [e for e in client.events if e["event"] == "firmware progress" and e["stage"] == "done"]
    assert ends == []  # the provider's own "done" was not passed on: one end per job


async def test_finished_jobs_are_bounded(gateway: Gateway, client: ApiClient) -> None:
    entry = (await upload(client, esp_image("esp32c3"), target="esp32c3"))["result"]
    for _ in range(FINISHED_KEPT + 3):
        await _install(client, "crash-1", entry["id"])
    jobs = (await client.command("firmware_jobs"))["result"]["jobs"]
    assert len(jobs) == FINISHED_KEPT
    assert all(job["stage"] == "failed" for job in jobs)


async def test_refusals_and_stop(gateway: Gateway, client: ApiClient) -> None:
    entry = (await upload(client, esp_image("esp32c3"), target="esp32c3"))["result"]
    answer = await client.command("firmware_install", node_id="plain-1", firmware_id=entry["id"])
    assert (answer["error_code"], answer["message"]) == (
        "not_supported", "no-install-test provider plain cannot update firmware"
    )  # fmt: skip
    plain = gateway.providers["plain"]
    with pytest.raises(CommandError) as err:  # the seam's default, called directly
        await plain.install_firmware(gateway.processor.nodes["plain-1"], entry, Path(), print)
    assert err.value.code == "not_supported"
    gateway.processor.nodes["plain-1"].provider = "gone"  # as a restored node of no provider
    answer = await client.command("firmware_install", node_id="plain-1", firmware_id=entry["id"])
    assert (answer["error_code"], answer["message"]) == (
        "provider_unavailable", "provider 'gone' is not running"
    )  # fmt: skip

    hanging = await client.command("firmware_install", node_id="hang-1", firmware_id=entry["id"])
    job_id = hanging["result"]["job_id"]
    await wait_for(lambda: gateway.jobs.list()[-1]["stage"] == "applying", what="applying")
    await gateway.stop()  # the job is cancelled and ends as failed; the firmware is free again
    job = next(job for job in gateway.jobs.list() if job["job_id"] == job_id)
    assert (job["stage"], job["error"]) == ("failed", "the gateway stopped")
    assert gateway.installer._nodes == set()


def test_download_base_url() -> None:
    """Where nodes are told to download from: configured, bound address, LAN address, none."""
    assert downloads.base_url("http://10.1.2.3:80", "127.0.0.1", 8099) == "http://10.1.2.3:80"
    assert downloads.base_url(None, "127.0.0.1", 8099) == "http://127.0.0.1:8099"
    assert downloads.base_url(None, "::1", 8099) == "http://[::1]:8099"
    assert downloads.base_url(None, "127.0.0.1", None) is None
    lan = downloads.lan_addresses("0.0.0.0")
    assert downloads.base_url(None, "0.0.0.0", 8099) == (
        f"http://{lan[0]}:8099" if lan else None
    )  # fmt: skip


def test_download_tokens_without_address_or_room(monkeypatch: pytest.MonkeyPatch) -> None:
    served = downloads.OtaDownloads()
    with pytest.raises(CommandError, match=r"set \[firmware\] ota_url"):
        served.issue(Path("x.bin"))
    served.base_url = "http://127.0.0.1:1"
    monkeypatch.setattr(downloads, "MAX_TOKENS", 2)
    token, url = served.issue(Path("x.bin"))
    assert url == f"http://127.0.0.1:1/api/v1/ota/{token}"
    served.issue(Path("x.bin"))
    with pytest.raises(CommandError, match="2 downloads are already open"):
        served.issue(Path("x.bin"))
    served.revoke(token)
    served.issue(Path("x.bin"))
