"""pve-bridge and pve-bridgedown: QEMU runs these for each NIC's TAP device (`script=` of -netdev),
and they plug it into the bridge its `netN` names, as qemu-server's scripts do."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from pvelab.procfs import nodename
from pvelab.pve.guests import store


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("missing interface name", file=sys.stderr)
        return 255
    iface = args[0]
    found = re.fullmatch(r"tap(\d+)i(\d+)", iface)
    if not found:
        print(f"got strange interface name '{iface}'", file=sys.stderr)
        return 255
    vmid, index = int(found.group(1)), found.group(2)
    if os.path.basename(sys.argv[0]) == "pve-bridgedown":
        subprocess.run(["ip", "link", "set", iface, "nomaster"], capture_output=True, check=False)
        return 0
    # During an incoming migration the config is still on the source node (qm start sets this).
    conf = store.load(os.environ.get("PVE_MIGRATED_FROM") or nodename(), vmid)
    net = store.parse_net(conf.main.options.get(f"net{index}", ""))
    if "bridge" not in net:
        print(f"unable to get network config 'net{index}'", file=sys.stderr)
        return 255
    mtu = ["mtu", net["mtu"]] if net.get("mtu") else []
    subprocess.run(["ip", "link", "set", iface, "master", net["bridge"], *mtu, "up"], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
