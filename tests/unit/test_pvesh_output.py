"""pvesh's output formats (the rendering only; the lab tests call pvesh on nodes)."""

import json

from pvelab.pve.api.pvesh import parse_args, render

VERSION = {"version": "9.1.1", "release": "9.1", "repoid": "42db4a6cf33dac83"}


def test_text_is_a_key_value_table_sorted_by_key():
    lines = render(VERSION, "text").splitlines()
    assert lines[0].startswith("┌") and lines[2].startswith("╞") and lines[-1].startswith("└")
    assert lines[1] == "│ key     │ value            │"
    assert [line.split("│")[1].strip() for line in lines[3::2]] == ["release", "repoid", "version"]


def test_a_list_of_objects_is_one_row_each_with_every_column():
    lines = render([{"name": "pve1", "nodeid": 1}, {"name": "pve2", "online": 1}], "text").splitlines()
    assert lines[1].split("│")[1:-1] == [" name ", " nodeid ", " online "]
    assert len([line for line in lines if line.startswith("│ pve")]) == 2


def test_noborder_and_noheader():
    assert render({"a": 1}, "text", border=False) == "key value\na   1"
    assert render({"a": 1}, "text", border=False, header=False) == "a 1"


def test_json_and_yaml():
    assert json.loads(render(VERSION, "json")) == VERSION
    assert render({"a": [1, 2]}, "yaml") == "---\na:\n- 1\n- 2"


def test_options_and_display_flags_are_told_apart():
    method, path, params, display = parse_args(["create", "/cluster/config", "--clustername", "c", "--noborder",
                                                "--output-format", "json"])
    assert (method, path, params) == ("POST", "/cluster/config", {"clustername": "c"})
    assert display == {"output": "json", "border": False, "header": True}
