"""Storage replication's logic: replication.cfg as PVE writes it, when a job runs (schedule, retries
after failures, an offline target), which snapshot is the base of an incremental send, pvesr's
tables; and the zfspool storage on a real btrfs (snapshots, a full then an incremental stream
received on another pool, PVE's refusals). The runs between nodes: tests/integration/test_storage_server.py."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pvelab.pve.replication import config, pvesr, run
from pvelab.pve.replication.config import ReplicationError
from pvelab.pve.storage import zfspool
from pvelab.pve.storage.config import StorageError

CFG = """local: 100-0
\ttarget pve2
\trate 10
\tschedule */5
\tsource pve1

local: 101-0
\tcomment nightly
\tdisable
\ttarget pve3

local: 100-1
\ttarget pve2
"""


def test_replication_cfg_reads_and_writes_as_pve() -> None:
    jobs = config.parse(CFG)
    assert list(jobs) == ["100-0", "101-0"]  # a second job of a guest to the same target is dropped
    assert jobs["100-0"] == {"type": "local", "target": "pve2", "rate": "10", "schedule": "*/5", "source": "pve1"}
    assert jobs["101-0"]["disable"] == "1" and not config.is_enabled(jobs["101-0"])
    # SectionConfig's order: comment, disable, the required target, the rest sorted
    assert config.dump({"100-0": {"type": "local", "source": "pve1", "schedule": "*/5", "target": "pve2",
                                  "rate": "10"}}) == CFG.split("\n\n", maxsplit=1)[0] + "\n"
    assert config.dump({"101-0": jobs["101-0"]}) == CFG.split("\n\n")[1] + "\n"


def test_a_second_job_to_the_same_target_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "REPLICATION_CFG", tmp_path / "replication.cfg")
    with pytest.raises(ReplicationError, match="replication job for guest '100' to target 'local/pve2' already exists"):
        config.write({"100-0": {"type": "local", "target": "pve2"}, "100-1": {"type": "local", "target": "pve2"}})
    assert not (tmp_path / "replication.cfg").exists()
    with pytest.raises(ReplicationError, match="invalid replication job id '99-0'"):
        config.parse_job_id("99-0")


def test_the_state_file_keeps_pves_defaults_and_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "STATE_FILE", tmp_path / "state.json")
    monkeypatch.setattr(config, "STATE_LOCK", tmp_path / "state.lck")
    job = {"target": "pve2"}
    assert config.job_state("100-0", job) == {"last_iteration": 0, "last_try": 0, "last_sync": 0, "fail_count": 0}
    config.update_state("100-0", "pve2", {"last_try": 5, "fail_count": 1, "error": "boom"})
    config.update_state("100-0", "pve2", {"last_sync": 5, "fail_count": 0}, drop=("error",))
    assert config.read_state() == {"100": {"local/pve2": {"last_try": 5, "last_sync": 5, "fail_count": 0}}}
    config.remove_state("100-0", "pve2")
    assert config.read_state() == {}


@pytest.mark.parametrize("state,online,expected", [
    ({"fail_count": 0, "last_try": 0}, True, "schedule"),  # never tried: due at once ("pending")
    ({"fail_count": 1, "last_try": 1000}, True, 1000 + 5 * 60),
    ({"fail_count": 2, "last_try": 1000}, True, 1000 + 10 * 60),
    ({"fail_count": 3, "last_try": 1000}, True, 1000 + 15 * 60),
    ({"fail_count": 7, "last_try": 1000}, True, 1000 + 30 * 60),
    ({"fail_count": 2, "last_try": 1000}, False, 0),  # failing with the target offline: not at all
])
def test_when_a_job_runs_next(monkeypatch: pytest.MonkeyPatch, state: dict[str, int], online: bool,
                              expected: Any) -> None:
    monkeypatch.setattr(run, "target_online", lambda _target: online)
    found = run.next_sync({"target": "pve2", "schedule": "*/15"}, state)
    if expected == "schedule":
        assert 0 < found < time.time()
    else:
        assert found == expected


def test_a_job_runs_on_its_schedule_after_its_last_try(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "target_online", lambda _target: True)
    last_try = int(time.mktime((2026, 12, 4, 10, 7, 30, 0, 0, -1)))
    due = run.next_sync({"target": "pve2", "schedule": "*/15"}, {"fail_count": 0, "last_try": last_try})
    assert time.localtime(due)[3:6] == (10, 15, 0)
    due = run.next_sync({"target": "pve2"}, {"fail_count": 0, "last_try": last_try})  # */15 by default
    assert time.localtime(due)[3:6] == (10, 15, 0)
    every_minute = run.next_sync({"target": "pve2", "schedule": "*/1"}, {"fail_count": 0, "last_try": last_try})
    assert time.localtime(every_minute)[3:6] == (10, 8, 0)
    assert run.next_sync({"target": "pve2", "remove_job": "full"}, {"fail_count": 3, "last_try": last_try}) == 1


class FakeVolume:
    def __init__(self, snaps: dict[str, str]) -> None:
        self.snaps = {name: {"id": ident, "timestamp": 0} for name, ident in snaps.items()}

    def snapshots(self, _volname: str) -> dict[str, dict[str, Any]]:
        return self.snaps


@pytest.mark.parametrize("ours,theirs,last_sync,base", [
    # the last sync's snapshot on both sides with the same identity
    ({"__replicate_100-0_10__": "a", "__replicate_100-0_20__": "b"},
     {"__replicate_100-0_10__": "a", "__replicate_100-0_20__": "b"}, 20, "__replicate_100-0_20__"),
    # state lost (the guest was stolen): the newest common replication snapshot
    ({"__replicate_100-0_10__": "a", "__replicate_100-0_20__": "b", "__replicate_100-0_30__": "c"},
     {"__replicate_100-0_10__": "a", "__replicate_100-0_20__": "b"}, 0, "__replicate_100-0_20__"),
    # same name, another identity (made on each side): not a base
    ({"__replicate_100-0_10__": "a", "__replicate_100-0_20__": "x"},
     {"__replicate_100-0_10__": "a", "__replicate_100-0_20__": "y"}, 20, "__replicate_100-0_10__"),
])
def test_the_base_of_an_incremental_send(monkeypatch: pytest.MonkeyPatch, ours: dict[str, str],
                                         theirs: dict[str, str], last_sync: int, base: str) -> None:
    monkeypatch.setattr(run, "volume_of", lambda volid: (FakeVolume(ours), volid.split(":")[1]))
    remote = {"local-zfs:vm-100-disk-0": {name: {"id": ident} for name, ident in theirs.items()}}
    assert run.common_bases("100-0", ["local-zfs:vm-100-disk-0"], last_sync, remote) == {
        "local-zfs:vm-100-disk-0": base}


def test_no_base_on_a_volume_the_target_holds_is_pves_error_and_a_missing_one_is_a_full_sync(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "volume_of", lambda volid: (FakeVolume({"__replicate_100-0_10__": "a"}), "v"))
    assert run.common_bases("100-0", ["local-zfs:vm-100-disk-0"], 10, {}) == {}  # not there: full
    with pytest.raises(ReplicationError) as err:
        run.common_bases("100-0", ["local-zfs:vm-100-disk-0"], 10, {"local-zfs:vm-100-disk-0": {}})
    assert str(err.value) == ("No common base snapshot on volume(s) local-zfs:vm-100-disk-0\nPlease remove the "
                              "problematic volume(s) from the replication target or delete and re-create the whole "
                              "job 100-0")


def test_pvesr_list_and_status_print_pves_tables(capsys: pytest.CaptureFixture[str]) -> None:
    jobs = [{"id": "100-0", "guest": 100, "jobnum": 0, "target": "pve2", "schedule": "*/1", "rate": 10.0},
            {"id": "101-0", "guest": 101, "jobnum": 0, "target": "pve3", "disable": 1}]
    pvesr.print_list(jobs)
    assert capsys.readouterr().out.splitlines() == [
        "JobID                Target                 Schedule  Rate  Enabled",
        "100-0                local/pve2                  */1    10      yes",
        "101-0                local/pve3                 */15     -       no"]
    synced = int(time.mktime((2026, 12, 4, 10, 7, 0, 0, 0, -1)))
    pvesr.print_status([{**jobs[0], "last_sync": synced, "next_sync": 1, "duration": 2.114, "fail_count": 0},
                        {**jobs[1], "next_sync": 0, "fail_count": 2, "error": "could not connect"}])
    assert capsys.readouterr().out.splitlines() == [
        "JobID      Enabled    Target                           LastSync             NextSync   Duration  FailCount"
        " State",
        "100-0      Yes        local/pve2            2026-12-04_10:07:00              pending      2.114          0"
        " OK",
        "101-0      No         local/pve3                              -                    -          -          2"
        " could not connect"]


def test_a_guest_found_on_its_target_turns_the_job_round(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HA recovered it there (or it was moved by hand): the job now replicates back to where it was."""
    monkeypatch.setattr(config, "REPLICATION_CFG", tmp_path / "replication.cfg")
    config.write({"100-0": {"type": "local", "target": "pve2", "source": "pve1", "schedule": "*/1"}})
    job = run.switch_if_stolen("100-0", config.read()["100-0"], "pve2")
    assert job["target"] == "pve1" and job["source"] == "pve2"
    assert config.read()["100-0"]["target"] == "pve1"
    assert run.switch_if_stolen("100-0", job, "pve2") == job  # already round: unchanged


# -- zfspool on a real btrfs -------------------------------------------------------------------------
@pytest.fixture
def pools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[zfspool.ZfsPoolBackend, ...]]:
    """Two btrfs pools (two nodes' rpool/data), loop-mounted; root and btrfs-progs needed (setup.sh)."""
    if subprocess.run(["id", "-u"], capture_output=True, text=True, check=False).stdout.strip() != "0":
        pytest.skip("a btrfs loop mount needs root: the suite runs as root (sudo ./scripts/test.sh)")
    monkeypatch.setattr(zfspool, "ZVOL_DIR", tmp_path / "zvol")
    made = []
    try:
        for name in ("a", "b"):
            image, mountpoint = tmp_path / f"{name}.img", tmp_path / name
            with open(image, "wb") as fh:
                fh.truncate(256 * 1024 * 1024)
            subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True, capture_output=True)
            mountpoint.mkdir()
            subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True)
            made.append(mountpoint)
            (mountpoint / "data").mkdir()
        yield tuple(zfspool.ZfsPoolBackend("local-zfs", {"type": "zfspool", "pool": "rpool/data",
                                                         "mountpoint": str(m / "data")}) for m in made)
    finally:
        for mountpoint in made:
            subprocess.run(["umount", str(mountpoint)], check=False)


def stream(store: zfspool.ZfsPoolBackend, snap: str, base: str | None) -> Any:
    out = tempfile.TemporaryFile()  # noqa: SIM115 - the caller reads it, then it goes with the test
    store.export("vm-100-disk-0", snap, base, out)
    out.seek(0)
    return out


def test_a_full_then_an_incremental_stream_leave_the_target_at_the_snapshot(pools: tuple[Any, ...]) -> None:
    here, there = pools
    assert here.alloc(100, None, 32 * 1024, None) == "local-zfs:vm-100-disk-0"
    image = here.root / "vm-100-disk-0" / zfspool.IMAGE_FILE
    with open(image, "r+b") as fh:
        fh.write(b"first" * 100000)
    here.snapshot("vm-100-disk-0", "__replicate_100-0_1__")
    full = stream(here, "__replicate_100-0_1__", None)
    there.import_stream("vm-100-disk-0", "__replicate_100-0_1__", None, full)
    with open(image, "r+b") as fh:
        fh.seek(16 * 1024 * 1024)
        fh.write(b"second")
    here.snapshot("vm-100-disk-0", "__replicate_100-0_2__")
    delta = stream(here, "__replicate_100-0_2__", "__replicate_100-0_1__")
    assert delta.seek(0, 2) < full.seek(0, 2) / 10  # only what changed
    delta.seek(0)
    there.import_stream("vm-100-disk-0", "__replicate_100-0_2__", "__replicate_100-0_1__", delta)
    assert Path(there.path("vm-100-disk-0")).read_bytes() == image.read_bytes()
    # the same identity on both sides (ZFS's guid): what makes the next base
    assert here.snapshots("vm-100-disk-0") == {
        k: {**v, "timestamp": here.snapshots("vm-100-disk-0")[k]["timestamp"]}
        for k, v in there.snapshots("vm-100-disk-0").items()}
    assert [v["volid"] for v in there.volumes()] == ["local-zfs:vm-100-disk-0"]  # snapshots are not volumes


def test_zfspool_refusals_are_pves_and_change_nothing(pools: tuple[Any, ...]) -> None:
    here, there = pools
    here.alloc(100, None, 1024, None)
    with pytest.raises(StorageError, match="dataset already exists"):
        here.alloc(100, "vm-100-disk-0", 1024, None)
    with pytest.raises(StorageError, match="illegal name 'vm-101-disk-0' - should be 'vm-100-\\*'"):
        here.alloc(100, "vm-101-disk-0", 1024, None)
    here.snapshot("vm-100-disk-0", "a")
    here.snapshot("vm-100-disk-0", "b")
    with pytest.raises(StorageError, match="can't rollback, 'a' is not most recent snapshot on 'rpool/data/vm-100"):
        here.snapshot_rollback("vm-100-disk-0", "a")
    there.alloc(100, None, 1024, None)
    with pytest.raises(StorageError, match="volume 'rpool/data/vm-100-disk-0' already exists"):
        there.import_stream("vm-100-disk-0", "a", None, stream(here, "a", None))
    with pytest.raises(StorageError, match="base snapshot 'rpool/data/vm-100-disk-0@x' doesn't exist"):
        there.import_stream("vm-100-disk-0", "b", "x", stream(here, "b", "a"))
    assert list(there.snapshots("vm-100-disk-0")) == []
    here.free("vm-100-disk-0")
    assert list(here.root.iterdir()) == []  # its snapshots went with it


@pytest.mark.parametrize("size,shown", [(624, "624B"), (4344, "4.24K"), (1049898, "1.00M"), (2160000, "2.06M"),
                                        (15 * 1024 ** 3, "15.0G"), (300 * 1024 ** 2, "300M")])
def test_sizes_are_printed_as_zfs_prints_them(size: int, shown: str) -> None:
    assert run.nicenum(size) == shown
