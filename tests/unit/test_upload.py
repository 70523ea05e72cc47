"""An upload as proxmoxer sends it (multipart/form-data) becomes what PVE's upload handler gets:
the fields, and the file saved apart as `tmpfilename` with its own name as `filename`."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from pvelab.pve.api import server


def test_a_multipart_upload_becomes_fields_and_a_saved_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "UPLOAD_DIR", tmp_path)
    request = requests.Request("POST", "https://pve1:8006/api2/json/nodes/pve1/storage/local/upload",
                               data={"content": "iso"}, files={"filename": ("tiny.iso", b"\x00ISO\xff")}).prepare()
    assert isinstance(request.body, bytes)
    fields = server.upload_fields(request.headers["Content-Type"], request.body)
    saved = Path(fields.pop("tmpfilename"))
    assert fields == {"content": "iso", "filename": "tiny.iso"}
    assert saved.parent == tmp_path and saved.name.startswith("pveupload-") and saved.read_bytes() == b"\x00ISO\xff"
