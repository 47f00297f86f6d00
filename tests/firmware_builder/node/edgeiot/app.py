import json

from edgeiot.drivers import relay


def load(path="config.json"):
    with open(path) as f:
        return json.load(f)


def run(path="config.json"):
    config = load(path)
    print("node", config["node_id"], "drivers", len(config.get("drivers", [])), relay.KIND)
    return config
