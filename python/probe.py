"""Whether this interpreter can serve the sidecar: prints {"missing": [modules], "protocol": version or null}.

Run by the setup script and by the sidecar launcher, with ``python/`` on PYTHONPATH, before the sidecar
itself is trusted to import: it needs nothing but the standard library.
"""

import importlib
import json

NEEDED = ["torch", "numpy", "zmq", "msgpack"]


def main() -> None:
    missing = []
    for name in NEEDED:
        try:
            importlib.import_module(name)
        except Exception:
            missing.append(name)
    try:
        from gradprom_sidecar import PROTOCOL_VERSION as protocol
    except Exception:
        protocol = None
    print(json.dumps({"missing": missing, "protocol": protocol}))


if __name__ == "__main__":
    main()
