"""Runs under Debian's /usr/bin/python3 with Debian's cloud-init package on its path (never the project's venv).

One JSON request a line on stdin, one JSON answer a line on stdout. A request holds a NoCloud seed's files
(base64); the answer is what cloud-init's own NoCloud code makes of them: the meta-data and network-config it
loads (``DataSourceNoCloud._merge_new_seed``, the function its datasource calls), the SSH keys it would install
from meta-data (``sources.normalize_pubkey_data``), a ``#cloud-config`` user-data as its cloud-config handler
loads it (``util.load_yaml``), and every warning cloud-init logged while doing so.
"""

import base64
import json
import logging
import sys


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main() -> None:
    sys.path.insert(0, sys.argv[1])  # the unpacked package
    from cloudinit import util, version
    from cloudinit.sources import DataSourceNoCloud, normalize_pubkey_data

    collect = Collect()
    logging.getLogger().addHandler(collect)
    print(json.dumps({"ready": version.version_string()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        files = {name: base64.b64decode(data) for name, data in request["files"].items()}
        collect.messages.clear()
        seed = DataSourceNoCloud._merge_new_seed({"meta-data": {}}, files)
        answer = {
            "meta-data": seed["meta-data"],
            "network-config": seed.get("network-config"),
            "public-keys": normalize_pubkey_data(seed["meta-data"].get("public-keys")),
            "cloud-config": None,
        }
        user_data = files.get("user-data", b"").decode("utf-8")
        if user_data.split("\n", 1)[0].rstrip() == "#cloud-config":
            answer["cloud-config"] = util.load_yaml(user_data, default=None)
        answer["warnings"] = list(collect.messages)
        # repr() for anything JSON cannot carry (a YAML date, a set): it then differs from what was meant.
        print(json.dumps(answer, default=repr), flush=True)


if __name__ == "__main__":
    main()
