"""The JSON node config: loading and checking, with every problem collected, never raised.

`load(path)` returns `(config, problems)`: `config` is a dict with defaults filled in (or None when
the node cannot run: no readable JSON, no valid `node_id` or `broker`), `problems` a list of
`(path, message)` such as `("drivers[2].pin", "expected an integer 0-48")`. Bad driver entries are
left out of `config["drivers"]`; unknown keys are reported and ignored. Secrets are never part of
a message.
"""

import json

REQUIRED = "required"
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
MAX_DRIVERS = 32


class InvalidError(ValueError):
    pass


def is_id(value):
    return isinstance(value, str) and 1 <= len(value) <= 64 and all(c in _ID_CHARS for c in value)


def _check(kind, value):
    """Return value converted to kind, or raise Invalid with what was expected."""
    if kind == "id":
        if not is_id(value):
            raise InvalidError("expected an id of 1-64 letters, digits, _ or -")
    elif kind == "str":
        if not isinstance(value, str) or not 1 <= len(value) <= 128:
            raise InvalidError("expected a string of 1-128 characters")
    elif kind == "secret":
        if not isinstance(value, str) or len(value) > 128:
            raise InvalidError("expected a string of at most 128 characters")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise InvalidError("expected true or false")
    elif kind == "pin":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 48:
            raise InvalidError("expected an integer 0-48")
    elif isinstance(kind, tuple) and kind[0] == "choice":
        if value not in kind[1:]:
            raise InvalidError("expected one of " + ", ".join(str(c) for c in kind[1:]))
    elif isinstance(kind, tuple):  # ("int"|"num", low, high)
        integral = kind[0] == "int"
        ok_type = isinstance(value, int) if integral else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not kind[1] <= value <= kind[2]:
            what = "an integer" if integral else "a number"
            raise InvalidError("expected %s %s to %s" % (what, kind[1], kind[2]))
        if not integral:
            value = float(value)
    elif kind == "nullable_str" and (
        value is not None and (not isinstance(value, str) or not 1 <= len(value) <= 32)
    ):
        raise InvalidError("expected null or a string of 1-32 characters")
    return value


def check_options(entry, spec, where, problems, lenient=False):
    """Check a JSON object against spec {key: (kind, default)}; None when a value is invalid
    (lenient: only when a required one is; an invalid optional value gets its default)."""
    if not isinstance(entry, dict):
        problems.append((where, "expected an object"))
        return None
    out, ok = {}, True
    for key in entry:
        if key not in spec:
            problems.append(("%s.%s" % (where, key), "unknown key, ignored"))
    for key, (kind, default) in spec.items():
        if key not in entry:
            if default == REQUIRED:
                problems.append(("%s.%s" % (where, key), "missing"))
                ok = False
            out[key] = None if default == REQUIRED else default
            continue
        try:
            out[key] = _check(kind, entry[key])
        except InvalidError as err:
            if lenient and default != REQUIRED:
                problems.append(("%s.%s" % (where, key), "%s; using %r" % (err, default)))
                out[key] = default
            else:
                problems.append(("%s.%s" % (where, key), str(err)))
                ok = False
    return out if ok else None


BROKER = {
    "host": ("str", REQUIRED),
    "port": (("int", 1, 65535), 1883),
    "user": ("str", None),
    "password": ("secret", None),
    "prefix": ("str", "edgeiot/v1"),
    "client_id": ("str", None),
    "keepalive": (("int", 5, 3600), 30),
}
WIFI = {"ssid": ("str", REQUIRED), "password": ("secret", "")}
NODE = {
    "node_id": ("id", REQUIRED),
    "name": ("str", None),
    "manufacturer": ("str", "EdgeIoT"),
    "model": ("str", None),
    "hardware": ("str", None),
    "heartbeat_interval": (("int", 1, 86400), 30),
    "watchdog": (("int", 0, 3600), 30),
    "health_window": (("int", 5, 3600), 60),
    "announce_ota": ("bool", True),
}


def check(doc):
    """Check a parsed config document: (config or None, problems)."""
    from edgeiot.drivers import DRIVERS  # late: drivers import this module

    problems = []
    top = dict(doc) if isinstance(doc, dict) else None
    if top is None:
        return None, [("", "expected a JSON object")]
    sections = {k: top.pop(k) for k in ("broker", "wifi", "drivers") if k in top}
    config = check_options(top, NODE, "config", problems, lenient=True)
    broker = check_options(sections.get("broker"), BROKER, "broker", problems, lenient=True)
    if "wifi" in sections:
        config_wifi = check_options(sections["wifi"], WIFI, "wifi", problems, lenient=True)
    else:
        config_wifi = None
    if config is None or broker is None:
        return None, problems
    if config["name"] is None:
        config["name"] = config["node_id"]
    if broker["client_id"] is None:
        broker["client_id"] = "edgeiot-node-" + config["node_id"]
    config["broker"], config["wifi"] = broker, config_wifi
    config["drivers"] = _drivers(sections.get("drivers", []), DRIVERS, problems)
    return config, problems


def _drivers(entries, registry, problems):
    if not isinstance(entries, list):
        problems.append(("drivers", "expected a list"))
        return []
    if len(entries) > MAX_DRIVERS:
        problems.append(("drivers", "more than %d drivers; the rest are ignored" % MAX_DRIVERS))
        entries = entries[:MAX_DRIVERS]
    drivers, ids, pins = [], {"node": True}, {}
    for i, entry in enumerate(entries):
        where = "drivers[%d]" % i
        kind = entry.get("type") if isinstance(entry, dict) else None
        cls = registry.get(kind) if isinstance(kind, str) else None
        if cls is None:
            problems.append((where + ".type", "unknown driver type %r" % (kind,)))
            continue
        options = check_options(entry, cls.spec(), where, problems)
        if options is None:
            continue
        if options["id"] in ids:
            problems.append((where + ".id", "duplicate id %r" % options["id"]))
            continue
        clash = [k for k in cls.PINS if options[k] is not None and options[k] in pins]
        if clash:
            key = clash[0]
            problems.append(
                (
                    "%s.%s" % (where, key),
                    "pin %d is used by %s" % (options[key], pins[options[key]]),
                )
            )
            continue
        for key in cls.PINS:
            if options[key] is not None:
                pins[options[key]] = options["id"]
        ids[options["id"]] = True
        drivers.append(options)
    return drivers


def load(path):
    """Read and check the config file at path: (config or None, problems)."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as err:
        return None, [(path, "cannot read: %s" % err)]
    except ValueError as err:
        return None, [(path, "not JSON: %s" % err)]
    return check(doc)
