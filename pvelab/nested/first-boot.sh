#!/bin/sh
# pvelab's first-boot hook for nested PVE nodes (docs/nested.md). Baked into PVE's installer ISO once
# per release:
#   proxmox-auto-install-assistant prepare-iso proxmox-ve_9.1-1.iso --fetch-from partition \
#       --on-first-boot pvelab-first-boot.sh
# and run by PVE's proxmox-first-boot unit on the node's first boot (the answer's [first-boot]
# section, ordering network-online; the argument is the unit's target). The installer configures
# only the management NIC; this gives the extra NICs (corosync link 1, ...) their addresses.
#
# One hook serves every node of every student, so it reads what to do from the node itself, by the
# rule `pvelab nested plan` lays the class out with: the management NIC has MAC BC:24:11:HH:LL:00,
# NIC i has BC:24:11:HH:LL:0i, and NIC i's address is the management address in the i-th subnet of
# the same size after the management subnet (with /24s: plus 256 * i). A node that does not follow
# the rule is left as it is.
set -eu
NET=${PVELAB_SYS_NET:-/sys/class/net}          # overridable for the hook's unit tests
INTERFACES=${PVELAB_INTERFACES:-/etc/network/interfaces}

say() { echo "pvelab first-boot: $*"; }
to_int() { IFS=. read -r a b c d <<EOF
$1
EOF
  echo $(( (a << 24) | (b << 16) | (c << 8) | d )); }
to_ip() { echo "$(( ($1 >> 24) & 255 )).$(( ($1 >> 16) & 255 )).$(( ($1 >> 8) & 255 )).$(( $1 & 255 ))"; }

mgmt_dev=$(ip -4 route show | awk '$1 == "default" { for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
[ -n "$mgmt_dev" ] || { say "no default route: no management NIC to go by, nothing done"; exit 0; }
mgmt_cidr=$(ip -4 addr show dev "$mgmt_dev" | awk '$1 == "inet" { print $2; exit }')
mgmt_mac=$(cat "$NET/$mgmt_dev/address")
case "$mgmt_mac" in
  bc:24:11:??:??:00) ;;
  *) say "management NIC $mgmt_dev ($mgmt_mac) is not a pvelab nested node's: nothing done"; exit 0;;
esac
[ -n "$mgmt_cidr" ] || { say "$mgmt_dev has no IPv4 address: nothing done"; exit 0; }
prefix=${mgmt_cidr#*/}
step=$(( 1 << (32 - prefix) ))
base=$(to_int "${mgmt_cidr%/*}")
stem=${mgmt_mac%:00}

for path in "$NET"/*; do
  dev=${path##*/}
  [ -e "$path/device" ] || continue  # NICs only: not the bridge, not lo
  mac=$(cat "$path/address")
  case "$mac" in
    "$stem":0[1-9]) ;;
    *) continue;;
  esac
  link=${mac##*:0}
  cidr="$(to_ip $(( base + link * step )))/$prefix"
  if grep -q "^iface $dev inet static" "$INTERFACES" 2>/dev/null; then
    say "$dev (link $link) is configured already"
  elif grep -q "^iface $dev inet manual" "$INTERFACES" 2>/dev/null; then
    # the installer lists the NICs it left alone as `iface NIC inet manual`: that one takes the address
    awk -v dev="$dev" -v cidr="$cidr" '$0 == "iface " dev " inet manual" {
      print "auto " dev; print "iface " dev " inet static"; print "\taddress " cidr; next } { print }' \
      "$INTERFACES" > "$INTERFACES.pvelab" && mv "$INTERFACES.pvelab" "$INTERFACES"
    say "$dev (link $link): $cidr"
  else
    printf '\nauto %s\niface %s inet static\n\taddress %s\n' "$dev" "$dev" "$cidr" >> "$INTERFACES"
    say "$dev (link $link): $cidr"
  fi
  if ! command -v ifreload >/dev/null 2>&1; then  # no ifupdown2 (not PVE): the address now, by hand
    ip addr add "$cidr" dev "$dev" 2>/dev/null || true
    ip link set "$dev" up
  fi
done
if command -v ifreload >/dev/null 2>&1; then
  ifreload -a
fi
