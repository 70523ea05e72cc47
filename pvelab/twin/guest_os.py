"""The lab's tiny guest OS: a bootable ISO made from a node image's own kernel and busybox.

A twin guest is a real QEMU machine, and it boots this ISO the way PVE guests boot an installer
CD (SeaBIOS, isolinux). It finds its identity the way a PVE guest does, on its cloud-init drive
(NoCloud, label `cidata`: hostname and network-config), and QEMU's fw_cfg tells it its VMID and the
node it runs on. It serves a small HTTP page (vmid, name, node, boot id, uptime, a counter held in
memory) and appends a heartbeat record every second to its first disk (raw, no filesystem), so a
user sees the difference between a live migration (counter and boot id kept) and a recovery (new
boot id, disk kept if shared).

Built once per node image, on the host, into the image's `local` storage:
`local:iso/pvelab-tiny.iso`."""

from __future__ import annotations

import io
import lzma
import subprocess
import tempfile
from pathlib import Path

from pvelab.nested import first_boot_hook

ISO_NAME = "pvelab-tiny.iso"
# The container template (a rootfs tarball, as PVE's templates are), in `local:vztmpl/`.
CT_TEMPLATE_NAME = "pvelab-tiny-ct_1.0-1_amd64.tar.gz"
CT_TEMPLATE_PATH = Path("var/lib/vz/template/cache") / CT_TEMPLATE_NAME
ISO_PATH = Path("var/lib/vz/template/iso") / ISO_NAME  # inside a node's root filesystem
ISOLINUX = Path("/usr/lib/ISOLINUX/isolinux.bin")
LDLINUX = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")
ISOHYBRID_MBR = Path("/usr/lib/ISOLINUX/isohdpfx.bin")
# On the ISO beside the boot files (read only by a guest that uses a shared disk): e2fsprogs' mke2fs and
# e2fsck with their libraries and loader, and the ext4 driver if the kernel has it as modules.
TOOLS = ("usr/sbin/mke2fs", "usr/sbin/e2fsck")
TOOL_LIBRARIES = ("libext2fs.so.2", "libcom_err.so.2", "libblkid.so.1", "libuuid.so.1", "libe2p.so.2", "libc.so.6",
                  "ld-linux-x86-64.so.2")
TOOL_MODULES = ("ext4",)
INSTALLED_AT_KIB = 65536  # where the stand-in installer keeps the answer on the disk
# What the guest needs that the cloud kernel may build as modules (built-in ones are skipped).
MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "virtio_scsi", "sd_mod", "sr_mod", "ata_piix", "isofs",
           "qemu_fw_cfg", "button", "evdev",  # button, evdev: the ACPI power button (qm shutdown)
           "ahci")  # a q35 machine's IDE drives (a nested node's CDs) sit on its AHCI controller

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /run /tmp /mnt/ci /www/cgi-bin; mount -t tmpfs tmpfs /run
for m in $(cat /etc/modules-order); do insmod "/lib/modules/$m" 2>/dev/null; done
for i in $(seq 30); do  # until the NIC and a disk have appeared (at most 3 s)
  [ -e /sys/class/net/eth0 ] && ls /dev/vd? /dev/sd? 2>/dev/null | grep -q . && break; sleep 0.1
done
# With virtio-scsi-single every disk has a controller of its own, probed in parallel: wait (at most
# 10 s) until there are as many SCSI disks as virtio-scsi controllers, so no disk is missed below
HBAS=0
for d in /sys/bus/pci/devices/*; do
  [ "$(cat $d/vendor)" = 0x1af4 ] && case "$(cat $d/device)" in 0x1004|0x1048) HBAS=$((HBAS + 1));; esac
done
for i in $(seq 100); do [ "$(ls /dev/sd? 2>/dev/null | wc -l)" -ge "$HBAS" ] && break; sleep 0.1; done
# The disks in the order of their controllers and SCSI ids (scsi0 before scsi1, as the VM's config
# names them), not of their sdX names: the kernel names disks as their probes finish, and under load
# scsi1 can be sda (the two_writers drill's second guest took its own disk for the shared one)
DISKS=$(for d in /sys/block/sd* /sys/block/vd*; do
  [ -e "$d/device" ] && echo "$(readlink -f "$d/device") /dev/${d##*/}"; done | sort | cut -d' ' -f2)
fw() { cat "/sys/firmware/qemu_fw_cfg/by_name/opt/pvelab/$1/raw" 2>/dev/null; }
VMID=$(fw vmid); NAME=vm$VMID
# The cloud-init drive, as PVE makes it (NoCloud, cidata). Looked for again for up to 5 s: a CD drive's
# ATAPI probe can trail the disk and the NIC, and its first read can fail (unit attention)
for i in $(seq 25); do
  for dev in /dev/sr* /dev/sd* /dev/vd*; do
    [ -b "$dev" ] || continue
    if mount -t iso9660 -o ro "$dev" /mnt/ci 2>/dev/null; then
      if [ -f /mnt/ci/meta-data ]; then CIDEV=$dev; break; fi
      umount /mnt/ci
    fi
  done
  [ -n "$CIDEV" ] && break; sleep 0.2
done
for poll in /sys/block/sr*/events_poll_msecs; do  # no media-change polling of the CD drives: under
  [ -e "$poll" ] && echo 0 > "$poll"                   # TCG each poll is emulated ATAPI I/O
done
# PVE's automated installer, stood in for (docs/nested.md): booted with a disc labelled proxmox-ais
# (tried as given and upper-case, as proxmox-fetch-answer does), it reads answer.toml, checks that
# the keys the installer needs are there, shows what it read on its page, "installs" (copies its own
# boot CD onto the answer's disk with the answer behind it, at 64 MiB) and powers off or reboots as
# reboot-mode says. A disk so installed boots as that node: the answer's name and address.
# Booted from a CD (the first of QEMU's boot order, fw_cfg's bootorder, is an IDE/SATA drive) it may be
# an installer whose answer disc trails: a q35 VM's AHCI drives are probed late under TCG, so the
# disc is looked for up to 30 s then; booted otherwise, once.
case "$(head -n 1 /sys/firmware/qemu_fw_cfg/by_name/bootorder/raw 2>/dev/null)" in
  *ide@*|*/drive@*) AIS_TRIES=150;;
  *) AIS_TRIES=1;;
esac
for i in $(seq $AIS_TRIES); do
  AIS=$(findfs LABEL=proxmox-ais 2>/dev/null || findfs LABEL=PROXMOX-AIS 2>/dev/null)
  [ -n "$AIS" ] && break; [ "$i" -lt "$AIS_TRIES" ] && sleep 0.2
done
INSTALLED_AT=@INSTALLED_AT_KIB@  # KiB
toml() {  # toml FILE SECTION KEY: a string, number or one-string array value, unquoted
  awk -v s="[$2]" -v k="$3" '/^\[/ { in_s = ($0 == s) } in_s && $1 == k && $2 == "=" {
    sub(/^[^=]*= */, ""); gsub(/^\[ *"|" *\]$|^"|"$/, ""); print; exit }' "$1"
}
if [ -n "$AIS" ]; then
  mkdir -p /mnt/ais; mount -t iso9660 -o ro "$AIS" /mnt/ais; A=/mnt/ais/answer.toml
  MISSING=""
  for key in global.keyboard global.country global.fqdn global.mailto global.timezone network.source \
             disk-setup.filesystem; do
    [ -n "$(toml $A "${key%%.*}" "${key#*.}" 2>/dev/null)" ] || MISSING="$MISSING $key"
  done
  [ -n "$(toml $A global root-password)$(toml $A global root-password-hashed)" ] ||
    MISSING="$MISSING global.root-password"
  TARGET=/dev/$(toml $A disk-setup disk-list); [ "$TARGET" = /dev/ ] && TARGET=/dev/sda
  SERIAL=$(toml $A disk-setup filter.ID_SERIAL)
  if [ -n "$SERIAL" ]; then  # the first disk whose ID_SERIAL, as udev makes it for a QEMU SCSI disk
    TARGET=/dev/nomatch       # (0VENDOR_MODEL_SERIAL), matches the filter's glob
    for dev in /sys/block/sd*; do
      [ -e "$dev/device/vpd_pg80" ] || continue
      ID="0$(echo $(cat $dev/device/vendor) | tr ' ' _)_$(echo $(cat $dev/device/model) | tr ' ' _)"
      ID="${ID}_$(tail -c +5 $dev/device/vpd_pg80 | tr -d '\0')"
      case "$ID" in $SERIAL) TARGET=/dev/${dev##*/}; break;; esac
    done
  fi
  REBOOT=$(toml $A global reboot-mode)
  BOOTCD=""; for dev in /dev/sr*; do [ "$dev" != "$AIS" ] && [ -b "$dev" ] && BOOTCD=$dev && break; done
  FIRSTBOOT=$(toml $A first-boot source)  # PVE's installer takes the hook from the ISO (prepare-iso
  case "$FIRSTBOOT" in                    # --on-first-boot) or a URL; the stand-in only from the ISO
    "") ;;
    from-iso) mkdir -p /mnt/cd
      if ! mount -t iso9660 -o ro "$BOOTCD" /mnt/cd 2>/dev/null || [ ! -f /mnt/cd/proxmox-first-boot ]; then
        MISSING="$MISSING failed loading first-boot executable from ISO"
        MISSING="$MISSING (was ISO prepared with \`--on-first-boot\` specified?)"
      fi
      umount /mnt/cd 2>/dev/null;;
    *) MISSING="$MISSING first-boot.source=$FIRSTBOOT (the stand-in takes the hook only from the ISO)";;
  esac
  cat > /www/cgi-bin/status <<EOS
#!/bin/sh
echo "Content-Type: text/plain"; echo
echo "installer: pvelab stand-in"; echo "answer: $AIS"
echo "fqdn: $(toml $A global fqdn)"; echo "cidr: $(toml $A network cidr)"; echo "gateway: $(toml $A network gateway)"
echo "disk: $TARGET"; echo "reboot-mode: $REBOOT"; echo "first-boot: ${FIRSTBOOT:-none}"; echo "missing:$MISSING"
EOS
  chmod +x /www/cgi-bin/status; httpd -p 80 -h /www
  if [ -n "$MISSING" ] || [ ! -b "$TARGET" ] || [ -z "$BOOTCD" ]; then
    echo "pvelab stand-in installer: cannot install (missing:$MISSING; disk $TARGET; boot CD $BOOTCD)" > /dev/console
    while true; do sleep 3600; done  # the installer stops with its error on screen, as PVE's does
  fi
  echo "pvelab stand-in installer: installing onto $TARGET from $BOOTCD" > /dev/console
  dd if="$BOOTCD" of="$TARGET" bs=1M conv=fsync 2>/dev/null
  { printf 'PVELABAI\n'; cat $A; printf '\0'; } |
    dd of="$TARGET" bs=1024 seek=$INSTALLED_AT conv=notrunc,fsync 2>/dev/null
  sync; echo "pvelab stand-in installer: done, $REBOOT" > /dev/console
  [ "$REBOOT" = power-off ] && poweroff -f
  reboot -f
fi
# Booted from a disk the stand-in installed: that node's name and address, no heartbeats (the disk
# is its system disk).
for dev in /dev/sd? /dev/vd?; do  # whichever the kernel probed first: the one with the installed answer
  if [ -b "$dev" ] && [ "$(dd if=$dev bs=1024 skip=$INSTALLED_AT count=1 2>/dev/null | head -c 8)" = PVELABAI ]; then
    dd if=$dev bs=1024 skip=$INSTALLED_AT count=64 2>/dev/null | tr -d '\0' | tail -n +2 > /run/answer.toml
    INSTALLED=$dev
  fi
done
if [ -n "$INSTALLED" ]; then
  FQDN=$(toml /run/answer.toml global fqdn); NAME=${FQDN%%.*}
  ADDR=$(toml /run/answer.toml network cidr); GW=$(toml /run/answer.toml network gateway)
  MASK=$(ipcalc -m "$ADDR" | cut -d= -f2); ADDR=${ADDR%/*}
fi
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
# An installed node with a first-boot hook runs it from the installed ISO as PVE's proxmox-first-boot
# unit does, with the ordering's target. The stand-in keeps no root filesystem between boots, so each
# boot is its first (on PVE the hook runs once and what it wrote stays).
if [ -n "$INSTALLED" ] && [ -n "$(toml /run/answer.toml first-boot source)" ]; then
  mkdir -p /mnt/sys /var/lib/proxmox-first-boot /etc/network
  if mount -t iso9660 -o ro "$INSTALLED" /mnt/sys 2>/dev/null && [ -f /mnt/sys/proxmox-first-boot ]; then
    cp /mnt/sys/proxmox-first-boot /var/lib/proxmox-first-boot/; chmod 0700 /var/lib/proxmox-first-boot/*
    case "$(toml /run/answer.toml first-boot ordering)" in
      before-network) UNIT=network-pre;; network-online) UNIT=network-online;; *) UNIT=multi-user;;
    esac
    /var/lib/proxmox-first-boot/proxmox-first-boot $UNIT > /run/first-boot.log 2>&1
    echo "exit $?" >> /run/first-boot.log; cat /run/first-boot.log > /dev/console
  fi
  umount /mnt/sys 2>/dev/null
fi
for dev in $DISKS; do  # the first disk that is not the cloud-init drive
  [ -b "$dev" ] && [ "$dev" != "$CIDEV" ] && [ -z "$INSTALLED" ] && DISK=$dev && break
done
echo "pvelab tiny guest: cloud-init drive ${CIDEV:-none}, heartbeat disk ${DISK:-none}" > /dev/console
# The heartbeat log is raw on the disk (no filesystem to make, so a blank disk costs nothing): block 0
# holds a count, record N (64 bytes, a line) sits at 4096 + 64 * N. At boot the count is advanced
# past records written after it.
record() { dd if="$DISK" bs=64 skip=$((64 + $1)) count=1 2>/dev/null | tr -d '\0 \n'; }
if [ -n "$DISK" ]; then
  case "$(dd if="$DISK" bs=8 count=1 2>/dev/null)" in
    PVELABHB) N=$(dd if="$DISK" bs=64 count=1 2>/dev/null | tr -dc 0-9) ;;
    *) N=0 ;;
  esac
  while [ -n "$(record "$N")" ]; do N=$((N + 1)); done
fi
BOOT=$(cat /proc/sys/kernel/random/boot_id)
echo 0 > /run/counter; echo "${N:-0}" > /run/heartbeats
cat > /www/cgi-bin/status <<EOS
#!/bin/sh
n=\$((\$(cat /run/counter) + 1)); echo \$n > /run/counter
echo "Content-Type: text/plain"; echo
echo "vmid: $VMID"; echo "name: $NAME"
echo "node: \$(cat /sys/firmware/qemu_fw_cfg/by_name/opt/pvelab/node/raw 2>/dev/null)"
echo "boot_id: $BOOT"; echo "uptime: \$(cut -d. -f1 /proc/uptime)"; echo "counter: \$n"
# the count is rewritten every second (truncate, then write): a read between the two is empty, so
# read again (under load a page showed "heartbeats: " and a test took it for a number)
hb=\$(cat /run/heartbeats); [ -n "\$hb" ] || hb=\$(cat /run/heartbeats)
echo "heartbeats: \$hb"; echo "heartbeats_at_boot: ${N:-0}"; echo "disk: ${DISK:-none}"
[ -n "$INSTALLED" ] && echo "installed: $INSTALLED" && echo "fqdn: $FQDN"
[ -s /run/first-boot.log ] && sed 's/^/first-boot: /' /run/first-boot.log
EOS
# the heartbeat disk's size as the guest sees it (a SCSI disk learns a new size on a rescan, as
# `echo 1 > /sys/block/sdX/device/rescan` does on any Linux guest after an online resize)
cat > /www/cgi-bin/disk <<EOS
#!/bin/sh
echo "Content-Type: text/plain"; echo
d=${DISK#/dev/}
[ -n "\$d" ] && [ -e /sys/block/\$d/device/rescan ] && echo 1 > /sys/block/\$d/device/rescan
echo "disk: ${DISK:-none}"; echo "bytes: \$(( \$(cat /sys/block/\$d/size 2>/dev/null || echo 0) * 512 ))"
EOS
# A second disk (after the heartbeat disk) is a "shared" one: the two_writers drill gives two guests
# the same LUN and drives a plain ext4 on it through /cgi-bin/shared?do=ACTION (mkfs, mount, write,
# umount, count, check). The tools (e2fsprogs, the ext4 modules) are on the boot CD, not in the
# initramfs, so a guest that does not use them boots no slower.
ln -sf /proc/mounts /etc/mtab  # e2fsprogs look there for what is mounted
for dev in $DISKS; do
  [ -b "$dev" ] && [ "$dev" != "$CIDEV" ] && [ "$dev" != "$DISK" ] && [ -z "$INSTALLED" ] && SHARED=$dev && break
done
cat > /www/cgi-bin/shared <<EOS
#!/bin/sh
echo "Content-Type: text/plain"; echo
S=$SHARED; M=/mnt/shared; T=/mnt/tools/tools
arg() { echo "\$QUERY_STRING" | tr '&' '\n' | sed -n "s/^\$1=//p" | head -1; }
# the disk as it is now: drop what this guest cached of it (its boot's label probes read the blank
# disk; the other writer has written since), as another server mounting it later would see it
fresh() { sync; echo 3 > /proc/sys/vm/drop_caches; blockdev --flushbufs "\$S" 2>/dev/null; }
tools() {
  mkdir -p /mnt/tools
  grep -q ' /mnt/tools ' /proc/mounts || mount -t iso9660 -o ro "\$(findfs LABEL=PVELAB_TINY)" /mnt/tools
  for m in \$(cat \$T/modules-order 2>/dev/null); do insmod "\$T/modules/\$m" 2>/dev/null; done
}
run() { tools; \$T/lib/ld-linux-x86-64.so.2 --library-path \$T/lib "\$T/\$@"; }
echo "shared: \${S:-none}"; [ -n "\$S" ] || exit 0
case "\$(arg do)" in
  mkfs) run mke2fs -q -F -t ext4 -J size=4 "\$S" 64M 2>&1; echo "mkfs-exit: \$?"
        tools; mkdir -p \$M && mount -t ext4 "\$S" \$M && mkdir -p \$M/data && umount \$M;;
  mount) tools; fresh; mkdir -p \$M; mount -t ext4 "\$S" \$M 2>&1; echo "mount-exit: \$?";;
  write) N=\$(arg seconds); rm -f /run/shared-written
         ( i=0; end=\$((\$(cut -d. -f1 /proc/uptime) + \${N:-10}))
           while [ \$(cut -d. -f1 /proc/uptime) -lt \$end ]; do
             i=\$((i + 1)); echo "$NAME \$i" > \$M/data/$NAME-\$i && echo "$NAME \$i" >> \$M/data/log && sync
             echo \$i > /run/shared-written
           done; echo done >> /run/shared-written ) > /dev/null 2>&1 &
         echo "writing: \${N:-10} s";;
  umount) umount \$M 2>&1; echo "umount-exit: \$?";;
  count) tools; fresh; mkdir -p \$M; mount -t ext4 -o ro "\$S" \$M 2>&1
         echo "files: \$(ls \$M/data 2>/dev/null | grep -vc '^log\$')"
         for w in \$(ls \$M/data 2>/dev/null | sed -n 's/-[0-9]*\$//p' | sort -u); do
           echo "files_\$w: \$(ls \$M/data | grep -c "^\$w-")"; done
         echo "log_lines: \$(wc -l < \$M/data/log 2>/dev/null || echo 0)"; umount \$M;;
  check) fresh; run e2fsck -fn "\$S" > /run/fsck.log 2>&1; echo "fsck-exit: \$?"; sed 's/^/fsck: /' /run/fsck.log;;
esac
echo "written: \$(head -1 /run/shared-written 2>/dev/null || echo 0)"
grep -q done /run/shared-written 2>/dev/null && echo "writer: done"
exit 0
EOS
chmod +x /www/cgi-bin/status /www/cgi-bin/disk /www/cgi-bin/shared
echo '<a href="/cgi-bin/status">status</a>' > /www/index.html
httpd -p 80 -h /www
if [ -n "$INSTALLED" ]; then  # a node waits for SSH: the stand-in answers port 22 with a banner only
  (while true; do echo "SSH-2.0-pvelab-standin-node" | nc -l -p 22 >/dev/null 2>&1; done) &
fi
echo "pvelab tiny guest: vmid=$VMID name=$NAME addr=$ADDR disk=$DISK boot=$BOOT" > /dev/console
# A record every second, written to the disk every 5 s in one batch: one dd, the rest shell
# builtins (a fork is costly under TCG; a crash loses at most the last 5 s of heartbeats).
: > /run/batch; FIRST=${N:-0}
mkfifo /run/tick; exec 4<>/run/tick  # `read -t 1` on it waits a second without forking `sleep`
# ACPI power button (qm shutdown): the button driver reports it as a key on an input device; a
# reader blocked on that device signals init, which writes out its heartbeats and powers off.
power_off() {
  [ -n "$DISK" ] && [ -s /run/batch ] &&
    dd if=/run/batch of="$DISK" bs=64 seek=$((64 + FIRST)) conv=notrunc,fsync 2>/dev/null
  echo "pvelab tiny guest: power button, powering off" > /dev/console; sync; poweroff -f
}
trap power_off USR1
for input in /sys/class/input/input*; do
  if [ "$(cat "$input/name" 2>/dev/null)" = "Power Button" ]; then
    for event in "$input"/event*; do
      [ -e "$event" ] && (
        dd if="/dev/input/${event##*/}" bs=24 count=1 >/dev/null 2>&1; kill -USR1 1 ) &
    done
  fi
done
while true; do
  if [ -n "$DISK" ]; then
    read -r UP _ < /proc/uptime
    printf '%-63s\n' "$N $UP $BOOT $VMID" >> /run/batch
    N=$((N + 1)); echo "$N" > /run/heartbeats
    if [ $((N % 5)) -eq 0 ]; then
      dd if=/run/batch of="$DISK" bs=64 seek=$((64 + FIRST)) conv=notrunc,fsync 2>/dev/null
      : > /run/batch; FIRST=$N
    fi
    if [ $((N % 30)) -eq 0 ]; then  # the count, so a boot scans at most 30 records
      printf 'PVELABHB%-55s\n' "$N" > /run/count
      dd if=/run/count of="$DISK" bs=64 count=1 conv=notrunc 2>/dev/null
    fi
  fi
  read -t 1 -u 4 _
done
"""

INIT = INIT.replace("@INSTALLED_AT_KIB@", str(INSTALLED_AT_KIB))  # one place for the stand-in's offset

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


def module_files(rootfs: Path, version: str, wanted: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """`wanted` and what they need as (NAME.ko, uncompressed content), in load order (insmod takes
    no compressed module)."""
    out = []
    for module in modules_in_load_order(rootfs, version, wanted):
        raw = (rootfs / "lib" / "modules" / version / module).read_bytes()
        out.append((Path(module).name.split(".ko")[0] + ".ko", lzma.decompress(raw) if module.endswith(".xz") else raw))
    return out


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
    modules = module_files(rootfs, version, MODULES)
    for name, data in modules:
        files[f"lib/modules/{name}"] = (0o100644, data)
    files["etc/modules-order"] = (0o100644, ("\n".join(name for name, _data in modules) + "\n").encode())
    # xz (with the CRC32 check the kernel's decompressor wants): fewer bytes for isolinux to read
    # through BIOS CD calls, which is where a TCG boot spends its time
    return lzma.compress(cpio_newc(files), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=9)


def add_tools(rootfs: Path, version: str, target: Path) -> None:
    """The shared-disk tools onto the ISO tree (see TOOLS): binaries, libraries, ext4 modules in order."""
    (target / "lib").mkdir(parents=True)
    (target / "modules").mkdir()
    for tool in TOOLS:
        (target / Path(tool).name).write_bytes((rootfs / tool).read_bytes())
    for name in TOOL_LIBRARIES:
        found = next((d / name for d in (rootfs / "usr/lib/x86_64-linux-gnu", rootfs / "lib/x86_64-linux-gnu",
                                         rootfs / "usr/lib64") if (d / name).exists()), None)
        if found is None:
            raise FileNotFoundError(f"{name} is not in the node image ({rootfs}): e2fsprogs missing?")
        (target / "lib" / name).write_bytes(found.resolve().read_bytes())
        (target / "lib" / name).chmod(0o755)
    modules = module_files(rootfs, version, TOOL_MODULES)
    for name, data in modules:
        (target / "modules" / name).write_bytes(data)
    (target / "modules-order").write_text("".join(f"{name}\n" for name, _data in modules))


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
        add_tools(rootfs, version, tree / "tools")
        # as PVE's ISO prepared with `prepare-iso --on-first-boot` carries it: the stand-in
        # installer's nodes run it (docs/nested.md)
        (tree / "proxmox-first-boot").write_bytes(first_boot_hook())
        # isohybrid (an MBR beside the El Torito record): copied onto a disk, as the stand-in
        # installer does, it boots from that disk too
        subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-o", str(target), "-V", "PVELAB_TINY",
                        "-isohybrid-mbr", str(ISOHYBRID_MBR),
                        "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot",
                        "-boot-load-size", "4", "-boot-info-table", str(tree)], check=True, capture_output=True)
    if target.stat().st_size > INSTALLED_AT_KIB * 1024:
        raise RuntimeError(f"{target} is larger than the stand-in installer's {INSTALLED_AT_KIB} KiB system area")
    return target


# A container's init: LXC has set up its hostname, eth0 and address from the config; the page and
# heartbeats are the VM guest's (the heartbeats in a file on the rootfs volume, which migrates with
# it). LXC passes the VMID and node in the environment (lxc.environment).
CT_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /run /tmp /www/cgi-bin /var/lib/pvelab
BOOT=$(cat /proc/sys/kernel/random/uuid); STARTED=$(date +%s)
HB=/var/lib/pvelab/heartbeats; touch $HB
echo 0 > /run/counter
cat > /www/cgi-bin/status <<EOS
#!/bin/sh
n=\$((\$(cat /run/counter) + 1)); echo \$n > /run/counter
echo "Content-Type: text/plain"; echo
echo "vmid: $PVELAB_VMID"; echo "name: \$(hostname)"; echo "node: $PVELAB_NODE"
echo "boot_id: $BOOT"; echo "uptime: \$((\$(date +%s) - $STARTED))"; echo "counter: \$n"
echo "heartbeats: \$(wc -l < $HB)"
EOS
chmod +x /www/cgi-bin/status
httpd -p 80 -h /www
trap 'exit 0' TERM INT PWR USR1 USR2
mkfifo /run/tick; exec 4<>/run/tick
while true; do
  read -r UP _ < /proc/uptime
  echo "$UP $BOOT $PVELAB_VMID" >> $HB
  read -t 1 -u 4 _
done
"""


def build_ct_template(rootfs: Path) -> Path:
    """The container template: busybox and CT_INIT as /sbin/init, a tar.gz in `local:vztmpl`."""
    import tarfile

    target = rootfs / CT_TEMPLATE_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as tar:
        def add(name: str, mode: int, data: bytes | None = None) -> None:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = mode & 0o7777, 0
            info.type = tarfile.DIRTYPE if data is None else tarfile.REGTYPE
            info.size = len(data or b"")
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        for directory in ("bin", "dev", "etc", "proc", "sys", "run", "sbin", "tmp", "var", "var/lib", "www"):
            add(f"./{directory}", 0o755)
        add("./bin/busybox", 0o755, (rootfs / "bin" / "busybox").read_bytes())
        add("./sbin/init", 0o755, CT_INIT.encode())
        add("./etc/hostname", 0o644, b"localhost\n")
        add("./etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        add("./etc/group", 0o644, b"root:x:0:\n")
    return target


if __name__ == "__main__":
    import sys

    print(build_iso(Path(sys.argv[1])))
