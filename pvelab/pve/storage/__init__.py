"""The storage subsystem of a twin node: /etc/pve/storage.cfg, volumes on `dir` storages and on an
emulated `lvmthin` (these containers have no device-mapper, so its logical volumes are sparse files
behind /dev/VG/LV links), the `pvesm` command and the /storage API."""

API_MODULES = ("api", "scan")  # its API routes (pvelab.pve.api.routes finds them here)
