"""The lab's tiny guest OS: a bootable ISO made from a node image's own kernel and busybox.

A twin guest is a real QEMU machine, and it boots this ISO the way PVE guests boot an installer
CD (SeaBIOS, isolinux). It finds its identity the way a PVE guest does, on its cloud-init drive
(NoCloud, label `cidata`: hostname and network-config), and QEMU's fw_cfg tells it its VMID and the
node it runs on. It serves a small HTTP page (vmid, name, node, boot id, uptime, a counter held in
memory) and appends a heartbeat line every second to its first disk, so a user sees the difference
between a live migration (counter and boot id kept) and a recovery (new boot id, disk kept if shared).

Built once per node image, on the host, into the image's `local` storage:
`local:iso/pvelab-tiny.iso`."""

from __future__ import annotations

import io
import lzma
import subprocess
import tempfile
from pathlib import Path

ISO_NAME = "pvelab-tiny.iso"
ISO_PATH = Path("var/lib/vz/template/iso") / ISO_NAME  # inside a node's root filesystem
ISOLINUX = Path("/usr/lib/ISOLINUX/isolinux.bin")
LDLINUX = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")
# What the guest needs that the cloud kernel may build as modules (built-in ones are skipped).
MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "virtio_scsi", "sd_mod", "sr_mod", "ata_piix", "isofs",
           "qemu_fw_cfg", "ext4")

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /run /tmp /mnt/ci /mnt/disk /www/cgi-bin; mount -t tmpfs tmpfs /run
for m in $(cat /etc/modules-order); do insmod "/lib/modules/$m" 2>/dev/null; done
sleep 1  # let the disks and the NIC appear
fw() { cat "/sys/firmware/qemu_fw_cfg/by_name/opt/pvelab/$1/raw" 2>/dev/null; }
VMID=$(fw vmid); NODE=$(fw node); NAME=vm$VMID
for dev in /dev/sr* /dev/sd* /dev/vd*; do  # the cloud-init drive, as PVE makes it (NoCloud, cidata)
  [ -b "$dev" ] || continue
  if mount -t iso9660 -o ro "$dev" /mnt/ci 2>/dev/null; then
    if [ -f /mnt/ci/meta-data ]; then CIDEV=$dev; break; fi
    umount /mnt/ci
  fi
done
if [ -n "$CIDEV" ]; then
  NAME=$(sed -n 's/^hostname: *//p' /mnt/ci/user-data | head -1)
  ADDR=$(sed -n "s/^ *address: *'*\([0-9.]*\)'*.*/\1/p" /mnt/ci/network-config | head -1)
  MASK=$(sed -n "s/^ *netmask: *'*\([0-9.]*\)'*.*/\1/p" /mnt/ci/network-config | head -1)
  GW=$(sed -n "s/^ *gateway: *'*\([0-9.]*\)'*.*/\1/p" /mnt/ci/network-config | head -1)
fi
hostname "${NAME:-tiny}"
ip link set lo up; ip link set eth0 up 2>/dev/null
if [ -n "$ADDR" ]; then
  eval "$(ipcalc -p "$ADDR" "${MASK:-255.255.255.0}")"
  ip addr add "$ADDR/$PREFIX" dev eth0
  [ -n "$GW" ] && ip route add default via "$GW"
fi
for dev in /dev/vda /dev/sda /dev/vdb /dev/sdb; do  # the first disk that is not the cloud-init drive
  [ -b "$dev" ] && [ "$dev" != "$CIDEV" ] || continue
  # a blank disk gets a filesystem once (busybox makes ext2, which the ext4 driver mounts)
  if mount -t ext4 "$dev" /mnt/disk 2>/dev/null || { mke2fs -q "$dev" && mount -t ext4 "$dev" /mnt/disk; }; then
    DISK=$dev; break
  fi
done
BOOT=$(cat /proc/sys/kernel/random/boot_id)
echo 0 > /run/counter
cat > /www/cgi-bin/status <<EOS
#!/bin/sh
n=\$((\$(cat /run/counter) + 1)); echo \$n > /run/counter
echo "Content-Type: text/plain"; echo
echo "vmid: $VMID"; echo "name: $NAME"
echo "node: \$(cat /sys/firmware/qemu_fw_cfg/by_name/opt/pvelab/node/raw 2>/dev/null)"
echo "boot_id: $BOOT"; echo "uptime: \$(cut -d. -f1 /proc/uptime)"; echo "counter: \$n"
echo "heartbeats: \$(wc -l < /mnt/disk/heartbeat.log 2>/dev/null || echo 0)"
EOS
chmod +x /www/cgi-bin/status
echo '<a href="/cgi-bin/status">status</a>' > /www/index.html
httpd -p 80 -h /www
echo "pvelab tiny guest: vmid=$VMID name=$NAME addr=$ADDR disk=$DISK boot=$BOOT" > /dev/console
while true; do
  [ -n "$DISK" ] && echo "$(date +%s) $BOOT $VMID" >> /mnt/disk/heartbeat.log && sync 2>/dev/null
  sleep 1
done
"""

ISOLINUX_CFG = """DEFAULT tiny
PROMPT 0
TIMEOUT 1
LABEL tiny
  KERNEL /vmlinuz
  APPEND initrd=/initrd.img console=ttyS0 quiet panic=5
"""


def kernel_of(rootfs: Path) -> tuple[Path, str]:
    """The image's kernel and its version (from linux-image-cloud-amd64)."""
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise FileNotFoundError(f"no kernel in {rootfs / 'boot'}")
    return kernels[-1], kernels[-1].name.removeprefix("vmlinuz-")


def modules_in_load_order(rootfs: Path, version: str, wanted: tuple[str, ...] = MODULES) -> list[str]:
    """Paths (below /lib/modules/VERSION) of `wanted` and what they need, dependencies first;
    modules built into the kernel are not in modules.dep and are skipped."""
    base = rootfs / "lib" / "modules" / version
    deps: dict[str, list[str]] = {}
    for line in (base / "modules.dep").read_text().splitlines():
        module, _, needs = line.partition(":")
        deps[module] = needs.split()
    by_name = {Path(m).name.split(".ko")[0].replace("-", "_"): m for m in deps}
    order: list[str] = []

    def add(module: str) -> None:
        for dep in reversed(deps.get(module, [])):
            add(dep)
        if module not in order:
            order.append(module)

    for name in wanted:
        if name in by_name:
            add(by_name[name])
    return order


def cpio_newc(files: dict[str, tuple[int, bytes]]) -> bytes:
    """An initramfs archive (cpio "newc"): {path: (mode, content)}; directories have empty content."""
    out = io.BytesIO()
    for ino, (name, (mode, data)) in enumerate([*files.items(), ("TRAILER!!!", (0, b""))], start=1):
        encoded = name.encode() + b"\0"
        header = "070701" + "".join(f"{v:08X}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0,
                                                         len(encoded), 0))
        out.write(header.encode() + encoded)
        out.write(b"\0" * (-(110 + len(encoded)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))
    return out.getvalue()


def initramfs(rootfs: Path, version: str) -> bytes:
    files: dict[str, tuple[int, bytes]] = {d: (0o40755, b"") for d in (
        "bin", "dev", "etc", "lib", "lib/modules", "mnt", "proc", "run", "sys", "tmp", "www")}
    files["bin/busybox"] = (0o100755, (rootfs / "bin" / "busybox").read_bytes())
    files["init"] = (0o100755, INIT.encode())
    order = []
    for module in modules_in_load_order(rootfs, version):
        raw = (rootfs / "lib" / "modules" / version / module).read_bytes()
        name = Path(module).name.split(".ko")[0] + ".ko"
        files[f"lib/modules/{name}"] = (0o100644, lzma.decompress(raw) if module.endswith(".xz") else raw)
        order.append(name)
    files["etc/modules-order"] = (0o100644, ("\n".join(order) + "\n").encode())
    return cpio_newc(files)


def build_iso(rootfs: Path) -> Path:
    """Write the ISO into the image's `local` storage and return its path."""
    kernel, version = kernel_of(rootfs)
    target = rootfs / ISO_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        (tree / "isolinux").mkdir()
        (tree / "isolinux" / "isolinux.bin").write_bytes(ISOLINUX.read_bytes())
        (tree / "isolinux" / "ldlinux.c32").write_bytes(LDLINUX.read_bytes())
        (tree / "isolinux" / "isolinux.cfg").write_text(ISOLINUX_CFG)
        (tree / "vmlinuz").write_bytes(kernel.read_bytes())
        (tree / "initrd.img").write_bytes(initramfs(rootfs, version))
        subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(target), "-V", "PVELAB_TINY",
                        "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot",
                        "-boot-load-size", "4", "-boot-info-table", str(tree)], check=True, capture_output=True)
    return target


if __name__ == "__main__":
    import sys

    print(build_iso(Path(sys.argv[1])))
