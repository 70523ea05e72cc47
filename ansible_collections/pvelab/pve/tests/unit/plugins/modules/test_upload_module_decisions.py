"""pve_upload against a fake node: uploaded once (with its SHA-256 for PVE to check), left alone when a file of
that size is there, re-uploaded when the size differs, removed; refusals before check mode."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from ansible_collections.pvelab.pve.plugins.module_utils import pve_upload_ops
from ansible_collections.pvelab.pve.plugins.module_utils.pve_errors import PveError
from ansible_collections.pvelab.pve.plugins.modules import pve_upload


class FakeNode:
    """One node's storage `local` (iso content) as its API shows it."""
    files: dict[str, bytes] = {}
    calls: list[tuple[str, str, dict[str, Any]]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> FakeNode:
        return cls()

    def get(self, path: str, /, **params: Any) -> Any:
        if path == "/nodes/l0/storage/local/content":
            return [{"volid": f"local:iso/{name}", "size": len(data)} for name, data in self.files.items()]
        raise PveError(f"Failed to GET '{path}': 500 storage 'nope' does not exist")

    def post(self, path: str, /, **params: Any) -> Any:
        data = params["filename"].read()
        self.calls.append(("POST", path, {**params, "filename": Path(params["filename"].name).name}))
        assert hashlib.sha256(data).hexdigest() == params["checksum"]
        self.files[Path(params["filename"].name).name] = data
        return "UPID:l0:1:1:1:imgcopy::root@pam:"

    def delete(self, path: str, /, **params: Any) -> Any:
        self.calls.append(("DELETE", path, params))
        # PVE decodes each path segment: the volume ID is the last one
        self.files.pop(unquote(path.rsplit("/", 1)[1]).removeprefix("local:iso/"), None)

    def wait_for_task(self, node: str, upid: str, timeout: float = 300) -> list[str]:
        return []


@pytest.fixture(autouse=True)
def node(monkeypatch: pytest.MonkeyPatch) -> type[FakeNode]:
    monkeypatch.setattr(FakeNode, "files", {})
    monkeypatch.setattr(FakeNode, "calls", [])
    monkeypatch.setattr(pve_upload_ops, "PveApi", FakeNode)
    return FakeNode


def upload(**given: Any) -> dict[str, Any]:
    spec = pve_upload.ARGUMENT_SPEC
    assert not set(given) - set(spec)
    return {name: {"api_host": "203.0.113.10", "api_password": "pw", "node": "l0", "storage": "local",
                   **given}.get(name, option.get("default")) for name, option in spec.items()}


def test_a_file_is_uploaded_once(tmp_path: Path, node: type[FakeNode]) -> None:
    disc = tmp_path / "ais-4011.iso"
    disc.write_bytes(b"answer disc")
    preview = pve_upload_ops.ensure_upload(upload(src=str(disc)), check_mode=True)
    assert preview["msg"] == f"{disc} would be uploaded as local:iso/ais-4011.iso" and node.calls == []
    made = pve_upload_ops.ensure_upload(upload(src=str(disc)), check_mode=False)
    assert (made["changed"], made["volid"], made["size"]) == (True, "local:iso/ais-4011.iso", 11)
    assert [(c[0], c[1], c[2]["content"], c[2]["checksum-algorithm"]) for c in node.calls] == [
        ("POST", "/nodes/l0/storage/local/upload", "iso", "sha256")]
    assert pve_upload_ops.ensure_upload(upload(src=str(disc)), check_mode=False)["changed"] is False


def test_a_different_size_is_uploaded_again_under_its_name(tmp_path: Path, node: type[FakeNode]) -> None:
    node.files["answer.iso"] = b"old"
    disc = tmp_path / "new.iso"
    disc.write_bytes(b"a longer answer")
    result = pve_upload_ops.ensure_upload(upload(src=str(disc), filename="answer.iso"), check_mode=False)
    assert result["diff"] == {"before": {"volid": "local:iso/answer.iso", "size": 3},
                              "after": {"volid": "local:iso/answer.iso", "size": 15}}
    assert node.files["answer.iso"] == b"a longer answer"


def test_absent_removes_it_once(node: type[FakeNode]) -> None:
    node.files["old.iso"] = b"x"
    assert pve_upload_ops.ensure_upload(upload(filename="old.iso", state="absent"), check_mode=True)["changed"]
    assert node.files == {"old.iso": b"x"}
    pve_upload_ops.ensure_upload(upload(filename="old.iso", state="absent"), check_mode=False)
    assert node.files == {} and node.calls == [("DELETE", "/nodes/l0/storage/local/content/local%3Aiso%2Fold.iso", {})]
    assert pve_upload_ops.ensure_upload(upload(filename="old.iso", state="absent"), False)["changed"] is False


@pytest.mark.parametrize("given,message", [
    ({"src": "/nonexistent/disc.iso"}, "/nonexistent/disc.iso is not a file on the controller"),
    ({"filename": "x.iso"}, "give src"),
    ({"src": "/etc/hostname", "storage": "nope"}, "cannot list storage 'nope' on node 'l0'"),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_refusals_come_before_check_mode(given: dict[str, Any], message: str, check_mode: bool,
                                         node: type[FakeNode]) -> None:
    with pytest.raises(PveError, match=message):
        pve_upload_ops.ensure_upload(upload(**given), check_mode)
    assert node.calls == []
