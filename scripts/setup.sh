#!/usr/bin/env bash
# Installs everything pvelab needs on a fresh Debian 12 machine. Run as root; safe to run again.
#   apt: the host side of the lab twin (nspawn, mmdebstrap, OpenIPMI, nftables, ...)
#   pip: the pinned Python dependencies from pyproject.toml, into ./.venv
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages): sudo ./scripts/setup.sh" >&2
  exit 1
fi

APT_PACKAGES=(
  systemd-container mmdebstrap debian-archive-keyring openipmi ipmitool iproute2 nftables iptables
  openssh-client passwd util-linux fuse3 python3 python3-venv
  xorriso isolinux syslinux-common
  chromium  # the grader's HTML report is checked in a real headless browser
  perl  # runs Proxmox's own Perl test files (tests/fixtures) against pvelab
  qemu-utils  # qemu-img: the unit tier makes real qcow2 images (linked clones, copies)
  openssh-server  # class.yml reaches lab servers over SSH; the tests run their own sshd (tests/ssh_hop.py)
  tgt  # the lab's storage server: its iSCSI target (tgtd, user space)
  nfs-ganesha nfs-ganesha-vfs rpcbind  # the lab's storage server: its NFS server (user space)
  btrfs-progs  # each twin node's ZFS pool is a btrfs filesystem the host makes (zfspool storages, pvesr)
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -q
  # Installing a service package starts it; none of these is needed running (the tests start their
  # own sshd on a lab address), so services are held back during the install unless a policy exists.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  if trap -p EXIT | grep -q policy-rc.d; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.pvelab-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python dependencies (pinned in pyproject.toml)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[test]"
  touch "$stamp"
fi
# community.proxmox, the collection users of PVE use, so the tests can check that it works against the
# twin unchanged. Galaxy is not reachable here: it comes from the `ansible` package on PyPI, which
# bundles it (ansible 12.3.0 -> community.proxmox 1.4.0), and only that collection is unpacked.
COLLECTIONS=.venv/collections
if [ ! -f "$COLLECTIONS/ansible_collections/community/proxmox/MANIFEST.json" ]; then
  echo "setup: unpacking community.proxmox from the ansible 12.3.0 wheel (for the tests)"
  wheel_dir=$(mktemp -d)
  .venv/bin/pip download -q --no-deps -d "$wheel_dir" "ansible==12.3.0"
  .venv/bin/python - "$wheel_dir"/ansible-12.3.0-py3-none-any.whl "$COLLECTIONS" <<'PY'
import sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    members = [n for n in archive.namelist() if n.startswith("ansible_collections/community/proxmox/")]
    archive.extractall(target, members)
PY
  rm -rf "$wheel_dir"
fi
# Every node's systemd takes ~9 inotify instances and all nodes run as the host's root, whose default
# allowance (128) ends at about 9 labs' worth of nodes: the 10th node set fails to boot. Raise it
# (never lower it), now and across reboots, so a class of labs fits (pvelab/twin/lab.py checks it).
INOTIFY_INSTANCES=2048
if [ "$(sysctl -n fs.inotify.max_user_instances)" -lt "$INOTIFY_INSTANCES" ]; then
  echo "setup: fs.inotify.max_user_instances = $INOTIFY_INSTANCES (for many lab nodes on one host)"
  echo "fs.inotify.max_user_instances = $INOTIFY_INSTANCES" > /etc/sysctl.d/60-pvelab.conf
  sysctl -q -w fs.inotify.max_user_instances="$INOTIFY_INSTANCES"
fi
echo "setup: done"
