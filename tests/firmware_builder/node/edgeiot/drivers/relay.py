KIND = "relay"


def describe(pin):
    return {"kind": KIND, "pin": pin}
