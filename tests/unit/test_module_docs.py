"""Each module's DOCUMENTATION says what its argument spec does (ansible-doc alone does not check
this; ansible-test's validate-modules would), and declares check/diff support as attributes."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (REPO / "library").glob("*.py"))
FIELDS = ("type", "default", "choices", "required", "elements")


def fragment(name: str) -> dict[str, Any]:
    """A pvelab doc fragment (`pve`, `pve.ssh`, `pve.attributes`, ...), parsed."""
    sys.path.insert(0, str(REPO / "plugins" / "doc_fragments"))
    try:
        fragments = importlib.import_module(name.split(".", maxsplit=1)[0]).ModuleDocFragment
    finally:
        sys.path.pop(0)
    attr = name.split(".")[1].upper() if "." in name else "DOCUMENTATION"
    return dict(yaml.safe_load(getattr(fragments, attr)))


def documented(module: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(attributes, options) of a module's DOCUMENTATION with its fragments merged, as ansible-doc does."""
    doc = yaml.safe_load(module.DOCUMENTATION)
    options: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for name in doc.get("extends_documentation_fragment", []):
        part = fragment(name)
        options.update(part.get("options") or {})
        attributes.update(part.get("attributes") or {})
    options.update(doc.get("options") or {})
    attributes.update(doc.get("attributes") or {})
    return attributes, options


def normal(option: dict[str, Any]) -> dict[str, Any]:
    out = {key: option.get(key) for key in FIELDS}
    out["required"] = bool(out["required"])
    out["type"] = out["type"] or "str"
    return out


@pytest.mark.parametrize("name", MODULES)
def test_documented_options_match_the_argument_spec(name: str) -> None:
    module = importlib.import_module(name)
    _, options = documented(module)
    spec = module.ARGUMENT_SPEC
    assert sorted(options) == sorted(spec), f"{name}: documented and real options differ"
    for option, real in spec.items():
        assert normal(options[option]) == normal(real), f"{name}: option {option} is documented wrongly"


@pytest.mark.parametrize("name", MODULES)
def test_check_and_diff_support_are_declared_as_attributes(name: str) -> None:
    attributes, _ = documented(importlib.import_module(name))
    assert attributes["check_mode"]["support"] == "full"
    assert attributes["diff_mode"]["support"] == ("none" if name.endswith("_info") else "full")
