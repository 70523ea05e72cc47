from pathlib import Path

import pytest
import yaml

from pvelab.errors import TwinError
from pvelab.twin import bmc, image
from pvelab.twin.inventory import inventory
from pvelab.twin.lab import require_ipmi_port
from pvelab.twin.spec import LabSpec
from pvelab.twin.state import LabPaths, LabRecord


def test_recipe_hash_follows_the_recipe():
    changed = dict(image.recipe("9"))
    changed["packages"] = [*image.PACKAGES, "vim"]
    assert image.recipe_hash(changed) != image.recipe_hash(image.recipe("9"))


def test_each_pve_major_has_the_debian_release_it_is_built_on():
    assert (image.recipe("8")["suite"], image.recipe("9")["suite"]) == ("bookworm", "trixie")
    assert image.image_dir("8") != image.image_dir("9")


def test_mmdebstrap_gets_every_package_and_hook(tmp_path):
    argv = image.mmdebstrap_argv("9", tmp_path / "root")
    assert argv[0] == "mmdebstrap"
    assert argv[-2:] == ["trixie", str(tmp_path / "root")]
    included = next(a for a in argv if a.startswith("--include=")).split("=", 1)[1].split(",")
    assert set(included) == set(image.PACKAGES)
    assert sum(a.startswith("--customize-hook=") for a in argv) == len(image.CUSTOMIZE)


def test_image_dir_is_keyed_by_the_recipe_hash(tmp_path):
    assert image.image_dir("8", tmp_path) == tmp_path / "images" / image.recipe_hash(image.recipe("8"))


def test_bmc_config_listens_on_the_node_bmc_address_with_lab_credentials(tmp_path):
    node = LabSpec().node("pve2")
    conf = bmc.lan_conf(node, "s3cret", tmp_path / "sock")
    assert "addr 198.18.2.12 623" in conf
    assert 'user 2 true "admin" "s3cret" admin' in conf
    assert "pvelab.twin.chassis" in conf and "pve2" in conf


def test_watchdog_sel_record_is_a_hard_reset_system_event():
    record = bmc.watchdog_sel_record(timestamp=0x01020304)
    assert len(record) == 16
    assert record[2] == 0x02  # system event record
    assert record[3:7] == [0x04, 0x03, 0x02, 0x01]  # little-endian timestamp
    assert record[10] == bmc.SENSOR_TYPE_WATCHDOG2
    assert record[13] == bmc.WATCHDOG_HARD_RESET


def test_ipmitool_command_names_cipher_suite_3():
    argv = bmc.ipmitool_argv(LabSpec().node("pve1"), "pw")
    assert argv[argv.index("-C") + 1] == "3"
    assert argv[argv.index("-H") + 1] == "198.18.2.11"


def test_inventory_has_every_node_with_addresses_and_bmc(tmp_path):
    record = LabRecord(LabSpec(), "rootpw", "bmcpw", "/img")
    inv = inventory(record, LabPaths(tmp_path))
    hosts = inv["all"]["children"]["pve_nodes"]["hosts"]
    assert list(hosts) == ["pve1", "pve2", "pve3"]
    assert hosts["pve3"] == {"ansible_host": "198.18.0.13", "link0_addr": "198.18.0.13",
                             "link1_addr": "198.18.1.13", "bmc_address": "198.18.2.13"}
    variables = inv["all"]["vars"]
    assert variables["ansible_ssh_private_key_file"] == str(tmp_path / "ssh" / "id_ed25519")
    assert variables["bmc_password"] == "bmcpw" and variables["pve_root_password"] == "rootpw"
    assert yaml.safe_load(yaml.safe_dump(inv)) == inv


def test_lab_record_round_trips_and_is_private(tmp_path):
    paths = LabPaths(tmp_path / "lab")
    record = LabRecord.new(LabSpec(node_count=2), "/img")
    record.save(paths)
    assert LabRecord.load(paths) == record
    assert paths.record.stat().st_mode & 0o777 == 0o600
    assert LabRecord.load(LabPaths(tmp_path / "none")) is None


def test_ipmi_port_in_use_is_reported_with_a_fix():
    import socket

    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("0.0.0.0", 0))
    try:
        with pytest.raises(TwinError) as err:
            require_ipmi_port(holder.getsockname()[1])
    finally:
        holder.close()
    assert "already in use" in err.value.cause and "ss -lunp" in err.value.fix


def test_paths_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PVELAB_STATE_DIR", str(tmp_path))
    assert LabPaths().record == Path(tmp_path) / "lab.json"


def test_a_new_image_replaces_older_ones_of_its_debian_release_only(tmp_path):
    import json

    for name, suite in (("old9", "trixie"), ("old8", "bookworm"), ("new9", "trixie")):
        (tmp_path / name).mkdir()
        (tmp_path / name / image.RECIPE_FILE).write_text(json.dumps({"suite": suite}))
    (tmp_path / "foreign").mkdir()  # no recipe: not ours to remove
    image.prune_older_images(tmp_path / "new9", "trixie", log=lambda _msg: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign", "new9", "old8"]


def test_an_older_image_a_lab_still_uses_is_kept(tmp_path, monkeypatch):
    """A test run (or a second lab) building a newer image must not pull an image from under a lab:
    one named by a lab's record, or mounted as an overlay's lower directory, stays."""
    import json

    images = tmp_path / "images"
    for name in ("old9", "older9", "mounted9", "new9"):
        (images / name).mkdir(parents=True)
        (images / name / image.RECIPE_FILE).write_text(json.dumps({"suite": "trixie"}))
    monkeypatch.setenv("PVELAB_STATE_DIR", str(tmp_path / "default-lab"))
    monkeypatch.setenv("PVELAB_LABS_DIR", str(tmp_path / "labs"))
    (tmp_path / "labs" / "class1").mkdir(parents=True)
    (tmp_path / "labs" / "class1" / "lab.json").write_text(json.dumps({"image": str(images / "old9")}))
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"101 30 0:52 / /var/lib/pvelab/labs/x/nodes/pve1/rootfs rw,relatime - overlay overlay "
                         f"rw,lowerdir={images / 'mounted9'},upperdir=/u,workdir=/w\n")
    assert image.images_in_use(mountinfo) == {images / "old9", images / "mounted9"}
    monkeypatch.setattr(image, "images_in_use", lambda: {images / "old9", images / "mounted9"})
    image.prune_older_images(images / "new9", "trixie", log=lambda _msg: None)
    assert sorted(p.name for p in images.iterdir()) == ["mounted9", "new9", "old9"]
