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
