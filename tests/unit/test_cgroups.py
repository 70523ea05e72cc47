"""The node cgroups the twin reads pids from, without a lab."""


def test_node_pids_survive_a_group_that_vanishes_while_the_tree_is_walked(tmp_path, monkeypatch) -> None:
    """An SSH session's scope can go away between listing a directory and entering it."""
    import os

    from pvelab.twin import cgroups

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "cgroup.procs").write_text("10\n11\n")
    (tmp_path / "gone").mkdir()
    real_scandir = os.scandir

    def scandir(path):
        if str(path).endswith("gone"):
            raise FileNotFoundError(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert cgroups._read_procs(tmp_path) == {10, 11}


def test_each_lab_sees_only_its_own_node_groups(tmp_path, monkeypatch) -> None:
    """The default lab's groups are bare node names, a named lab's carry its prefix: a lab's teardown
    and leftover check never touch another lab's processes."""
    from pvelab.twin import cgroups

    monkeypatch.setattr(cgroups, "CGROUP_ROOT", tmp_path)
    (tmp_path / "cgroup.controllers").write_text("")
    for group, pid in (("pve1", 10), ("pvl01-pve1", 20), ("pvl02-pve1", 30), ("pvl02-pve2", 31)):
        (tmp_path / "pvelab" / group).mkdir(parents=True)
        (tmp_path / "pvelab" / group / "cgroup.procs").write_text(f"{pid}\n")
    assert cgroups.groups("pvlab") == ["pve1"] and cgroups.groups("pvl02") == ["pvl02-pve1", "pvl02-pve2"]
    assert (cgroups.any_pids("pvlab"), cgroups.any_pids("pvl02"), cgroups.any_pids(None)) == \
        ([10], [30, 31], [10, 20, 30, 31])
    for group in ("pvl02-pve1", "pvl02-pve2"):
        (tmp_path / "pvelab" / group / "cgroup.procs").unlink()
    cgroups.remove_all("pvl02")
    assert cgroups.groups(None) == ["pve1", "pvl01-pve1"]
