"""Application bundle updates (contract B, format `edgeiot-bundle`) with rollback.

The `ota` command gives a URL, size, sha256 and version. The node downloads the bundle over HTTP
into `ota.part`, resuming with `Range: bytes=N-` after an interrupted transfer (also across a
reboot: `ota.part.json` remembers the job), checks its sha256, unpacks it into the bundle slot
that is not running (`slots/a` or `slots/b`; each file checked against the manifest), switches
`ota.json` to it in one rename and reboots. boot.py runs the new bundle on trial; it is confirmed
once the node is online and has sent a heartbeat within `health_window` seconds, else the node
resets and boot.py rolls back. Progress goes to `<node_id>/ota_status`.
"""

import asyncio
import hashlib
import json
import os
import time

from edgeiot import VERSION, log

MAGIC = b"EIOTBNDL"
MAX_BUNDLE = 4 * 1024 * 1024
CHUNK = 4096
RETRIES = 5
PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-"
HEX = "0123456789abcdef"


class OtaError(Exception):
    pass


def _hex(digest):
    return "".join("%02x" % b for b in digest)


def _exists(path):
    try:
        os.stat(path)
    except OSError:
        return False
    return True


def _rmtree(path):
    if not _exists(path):
        return
    if os.stat(path)[0] & 0x4000:  # a directory
        for name in os.listdir(path):
            _rmtree(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)


def _makedirs(path):
    """Create the directories above path (a file's path)."""
    built = "/" if path.startswith("/") else ""
    for part in path.split("/")[:-1]:
        if part:
            built += part
            if not _exists(built):
                os.mkdir(built)
            built += "/"


def check_command(doc):
    """The `ota` command's fields, or OtaError naming what is wrong."""
    job = doc.get("job")
    if not isinstance(job, str) or not 1 <= len(job) <= 64:
        raise OtaError("job: expected 1-64 characters")
    url, size, sha = doc.get("url"), doc.get("size"), doc.get("sha256")
    if not isinstance(url, str) or not url.startswith("http://"):
        raise OtaError("url: expected http://")
    if isinstance(size, bool) or not isinstance(size, int) or not 12 < size <= MAX_BUNDLE:
        raise OtaError("size: expected 13 to %d bytes" % MAX_BUNDLE)
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in HEX for c in sha):
        raise OtaError("sha256: expected 64 lowercase hex digits")
    if doc.get("format") != "edgeiot-bundle":
        raise OtaError("format %r is not supported by this node" % (doc.get("format"),))
    version = doc.get("version")
    if not isinstance(version, str) or not 1 <= len(version) <= 64:
        raise OtaError("version: expected a string")
    return job, url, size, sha, version


def _split_url(url):
    rest = url[len("http://") :]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    return host, int(port or 80), "/" + path


def read_manifest(f, size, target):
    """Check the bundle's header and manifest against its size; return the manifest."""
    head = f.read(12)
    if len(head) != 12 or head[:8] != MAGIC:
        raise OtaError("not an EdgeIoT bundle")
    length = int.from_bytes(head[8:12], "little")
    if length > size - 12:
        raise OtaError("manifest longer than the bundle")
    try:
        manifest = json.loads(f.read(length))
    except ValueError:
        raise OtaError("manifest is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != 1:
        raise OtaError("manifest: format 1 expected")
    if manifest.get("target") not in ("any", target):
        raise OtaError("bundle is for %r, this node is %r" % (manifest.get("target"), target))
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise OtaError("manifest: no files")
    total = 12 + length
    for entry in files:
        path = entry.get("path") if isinstance(entry, dict) else None
        if (
            not isinstance(path, str)
            or not path
            or path.startswith("/")
            or ".." in path
            or any(c not in PATH_CHARS for c in path)
        ):
            raise OtaError("manifest: bad path %r" % (path,))
        if not isinstance(entry.get("size"), int) or entry["size"] < 0:
            raise OtaError("manifest: bad size of %s" % path)
        total += entry["size"]
    if total != size:
        raise OtaError("bundle is %d bytes, its manifest says %d" % (size, total))
    return manifest


class Ota:
    def __init__(self, node, hal, target):
        self.node, self.hal, self.target = node, hal, target
        self.root = hal.fs_root
        self.state_path = self.root + "ota.json"
        self.state = self._read(self.state_path) or {}
        self.task = None
        self.confirmed = not self.state.get("trial")

    # -- state --------------------------------------------------------------------------------

    def _read(self, path):
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def _write(self, path, doc):
        with open(path + ".tmp", "w") as f:
            json.dump(doc, f)
        os.rename(path + ".tmp", path)

    def version(self):
        """The running firmware's version: the bundle's, else the flashed one's."""
        return self.state.get("version") if self.state.get("active") else VERSION

    def status(self, job, state, **extra):
        doc = {"v": 1, "job": job, "state": state}
        doc.update(extra)
        self.node.queue_ota_status(doc)

    # -- after boot ---------------------------------------------------------------------------

    def on_online(self):
        """Called once the node is connected and its heartbeat went out."""
        rolled = self.state.pop("rolled_back", None)
        if rolled is not None:
            self._write(self.state_path, self.state)
            if rolled.get("job"):
                self.status(
                    rolled["job"],
                    "rolled_back",
                    version=self.version(),
                    error="version %s did not come online" % rolled.get("version"),
                )
        if not self.confirmed:
            self.confirmed = True
            self.state["trial"] = False
            self._write(self.state_path, self.state)
            log.info("bundle %s confirmed" % self.state.get("version"))
            self.status(self.state.get("job"), "done", version=self.version(), progress=100)

    async def health_window(self, seconds):
        """On trial: reset when not confirmed in time (boot.py then rolls back)."""
        if self.confirmed:
            return
        await asyncio.sleep(seconds)
        if not self.confirmed:
            log.error(
                "bundle %s not online within %d s: reset" % (self.state.get("version"), seconds)
            )
            self.hal.reset()

    # -- the command -----------------------------------------------------------------------------

    def command(self, doc):
        job = doc.get("job") if isinstance(doc.get("job"), str) else "?"
        try:
            parsed = check_command(doc)
        except OtaError as err:
            self.status(job[:64], "failed", error=str(err)[:255])
            return
        if self.task is not None:
            self.status(parsed[0], "failed", error="another update is running")
            return
        self.task = asyncio.create_task(self._run(*parsed))

    async def _run(self, job, url, size, sha, version):
        try:
            part = await self._download(job, url, size, sha)
            self.status(job, "verifying", progress=100)
            if _hex(self._hash(part)) != sha:
                _rmtree(part)
                raise OtaError("sha256 mismatch")
            self.status(job, "applying", progress=100)
            slot = self._stage(part, size)
            self._swap(slot, job, version)
            _rmtree(part)
            _rmtree(part + ".json")
            self.status(job, "rebooting", progress=100)
            self.node.request_reboot()
        except (OtaError, OSError, ValueError) as err:
            log.warning("update %s failed: %r" % (job, err))
            self.status(job, "failed", error=str(err)[:255] or repr(err)[:255])
        finally:
            self.task = None

    def _hash(self, path):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    return h.digest()
                h.update(chunk)

    async def _download(self, job, url, size, sha):
        part = self.root + "ota.part"
        meta = self._read(part + ".json")
        if meta != {"job": job, "sha256": sha}:
            _rmtree(part)
            self._write(part + ".json", {"job": job, "sha256": sha})
        for attempt in range(RETRIES):
            have = os.stat(part)[6] if _exists(part) else 0
            if have == size:
                return part
            try:
                await self._fetch(job, url, size, part, have)
            except (OSError, OtaError) as err:
                log.warning("download of %s: %r (try %d)" % (job, err, attempt + 1))
                await asyncio.sleep(1 + attempt)
        have = os.stat(part)[6] if _exists(part) else 0
        if have != size:
            raise OtaError(
                "download incomplete after %d tries (%d of %d bytes)" % (RETRIES, have, size)
            )
        return part

    async def _fetch(self, job, url, size, part, have):
        host, port, path = _split_url(url)
        reader, writer = await asyncio.open_connection(host, port)
        try:
            request = "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (path, host)
            if have:
                request += "Range: bytes=%d-\r\n" % have
            writer.write((request + "\r\n").encode())
            await writer.drain()
            status = (await reader.readline()).split()
            code = int(status[1]) if len(status) > 1 else 0
            while (await reader.readline()) not in (b"\r\n", b""):
                pass  # headers: the length is known from the command
            if code == 200:
                have = 0  # the server ignored the range: start over
            elif code != 206:
                raise OtaError("HTTP %d" % code)
            last = time.ticks_ms()
            with open(part, "ab" if have else "wb") as f:
                while have < size:
                    data = await reader.read(min(CHUNK, size - have))
                    if not data:
                        raise OSError("connection closed at %d of %d bytes" % (have, size))
                    f.write(data)
                    have += len(data)
                    if time.ticks_diff(time.ticks_ms(), last) > 1000 or have == size:
                        last = time.ticks_ms()
                        self.status(job, "downloading", progress=have * 100 // size)
        finally:
            writer.close()
            await writer.wait_closed()

    def _stage(self, part, size):
        slot = "slots/b" if self.state.get("active") == "slots/a" else "slots/a"
        staging = self.root + slot + ".new"
        _rmtree(staging)
        _makedirs(staging + "/x")
        with open(part, "rb") as f:
            manifest = read_manifest(f, size, self.target)
            for entry in manifest["files"]:
                target = staging + "/" + entry["path"]
                _makedirs(target)
                h, left = hashlib.sha256(), entry["size"]
                with open(target, "wb") as out:
                    while left:
                        chunk = f.read(min(CHUNK, left))
                        if not chunk:
                            raise OtaError("bundle ends inside %s" % entry["path"])
                        h.update(chunk)
                        out.write(chunk)
                        left -= len(chunk)
                if _hex(h.digest()) != entry.get("sha256"):
                    raise OtaError("%s does not match its sha256" % entry["path"])
        _rmtree(self.root + slot)
        os.rename(staging, self.root + slot)
        return slot

    def _swap(self, slot, job, version):
        state = {
            "active": slot,
            "version": version,
            "job": job,
            "trial": True,
            "boots": 0,
            "previous": self.state.get("active"),
            "previous_version": self.version(),
        }
        self._write(self.state_path, state)
        self.state = state
