"""The collection pvelab.pve stays a collection: one version with the Python package, an action group
that holds every module taking the API options, fully qualified names everywhere in the repository,
no sys.path edits, and no bare `library/` for Ansible to read."""

from __future__ import annotations

import configparser
import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible_collections" / "pvelab" / "pve"
MODULES = sorted(p.stem for p in (COLLECTION / "plugins" / "modules").glob("*.py"))
ROLES = sorted(p.name for p in (COLLECTION / "roles").iterdir())


def yaml_files() -> list[Path]:
    return [p for top in (COLLECTION, REPO / "molecule", REPO / "inventory", REPO / "tests")
            for p in top.rglob("*.yml") if "output" not in p.parts]


def test_one_version_for_the_package_and_the_collection() -> None:
    package = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"], galaxy["version"]) == ("pvelab", "pve", package)
    added = {m: re.search(r'version_added: "([\d.]+)"', (COLLECTION / "plugins" / "modules" / f"{m}.py").read_text())
             for m in MODULES}
    assert all(v and tuple(map(int, v.group(1).split("."))) <= tuple(map(int, package.split("."))) for v in
               added.values()), added


def test_the_action_group_holds_exactly_the_modules_with_the_api_options() -> None:
    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    with_api = [m for m in MODULES if "- pvelab.pve.api\n" in (COLLECTION / "plugins" / "modules" / f"{m}.py")
                .read_text()]
    assert runtime["action_groups"]["api"] == with_api and len(with_api) >= 15
    assert runtime["requires_ansible"] == ">=2.19.0"
    for role in ROLES:
        meta = yaml.safe_load((COLLECTION / "roles" / role / "meta" / "main.yml").read_text())["galaxy_info"]
        assert (meta["min_ansible_version"], meta["license"]) == ("2.19", "MIT"), role
    assert (COLLECTION / "LICENSE").read_text().startswith("MIT License")


def test_no_short_module_role_or_filter_names_in_yaml() -> None:
    short_module = re.compile(r"^\s*(?:- )?(" + "|".join(MODULES) + r"):", re.M)
    short_role = re.compile(r"^\s*(?:- role: |name: )(" + "|".join(ROLES) + r")\s*$", re.M)
    short_filter = re.compile(r"\|\s*(pvecm_status|pvecm_nodes|corosync_links|ha_failback_guests|guest_page|"
                              r"kept_entries|class_plan|class_capacity|class_roster_entry|class_roster|"
                              r"class_inventory)\b")
    texts = {str(p.relative_to(REPO)): p.read_text() for p in yaml_files()}
    found = {name: hits for name, text in texts.items()
             if (hits := short_module.findall(text) + short_role.findall(text) + short_filter.findall(text))}
    assert found == {}


def test_nothing_edits_sys_path_or_points_ansible_at_bare_folders() -> None:
    edits = [str(p.relative_to(REPO)) for top in ("pvelab", "bench", "tests", "ansible_collections")
             for p in (REPO / top).rglob("*.py")
             if re.search(r"sys\.path\.(insert|append)|module_utils\.__path__", p.read_text())
             and p.name != "get_pip.py"]  # get_pip.py imports pip from its wheel, as get-pip.py does
    assert edits == []
    config = configparser.ConfigParser()
    config.read(REPO / "ansible.cfg")
    defaults = dict(config["defaults"])
    assert not {"library", "module_utils", "roles_path", "filter_plugins"} & set(defaults)
    assert defaults["collections_path"] == "."


def test_the_class_filters_know_the_twins_lab_names_and_slots() -> None:
    """The collection cannot import pvelab: its copies of a lab name's form and the last slot stay in step."""
    from ansible_collections.pvelab.pve.plugins.filter import classes
    from pvelab.twin.spec import MAX_SLOT
    from pvelab.twin.state import LAB_NAME

    assert (classes.LAB_NAME.pattern, classes.MAX_SLOT) == (LAB_NAME.pattern, MAX_SLOT)
