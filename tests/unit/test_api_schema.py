"""Parameter verification against the shipped copy of PVE's API schema."""

import pytest

from pvelab.pve.api import schema


def endpoint(method, path, major="9"):
    found = schema.match(major, method, path)
    assert found is not None, f"{method} {path} is not served"
    return found


def test_concrete_paths_match_templates_with_their_values():
    ep, values = endpoint("GET", "/nodes/pve2/tasks/UPID:pve2:0:0:0:x::root@pam:/status")
    assert ep.template == "/nodes/{node}/tasks/{upid}/status"
    assert values == {"node": "pve2", "upid": "UPID:pve2:0:0:0:x::root@pam:"}
    assert schema.match("9", "PATCH", "/version") is None


def test_valid_parameters_are_typed():
    ep, _ = endpoint("POST", "/cluster/config")
    typed = schema.verify(ep, {"clustername": "labclu", "link0": "198.18.0.11,priority=5", "votes": "2"})
    assert typed == {"clustername": "labclu", "link0": "198.18.0.11,priority=5", "votes": 2}


@pytest.mark.parametrize("params,errors", [
    ({"clustername": "c", "link9": "198.18.0.1"},
     {"link9": "property is not defined in schema and the schema does not allow additional properties"}),
    ({"clustername": "c", "link0": "198.18.0.1,prio=3"},
     {"link0": "invalid format - property 'prio' is not defined in schema"}),
    ({"clustername": "bad_name"}, {"clustername": "value does not look like a valid node name"}),
    ({"clustername": "c", "nodeid": "one"}, {"nodeid": "type check ('integer') failed - got 'one'"}),
])
def test_invalid_parameters_get_pves_messages(params, errors):
    ep, _ = endpoint("POST", "/cluster/config")
    with pytest.raises(schema.ParamError) as err:
        schema.verify(ep, params)
    assert err.value.errors == errors


def test_booleans_must_be_0_or_1_in_forms_but_json_may_use_true():
    ep, _ = endpoint("POST", "/cluster/config/join")
    base = {"hostname": "pve1", "password": "x", "fingerprint": ":".join(["AB"] * 32)}
    with pytest.raises(schema.ParamError) as err:
        schema.verify(ep, {**base, "force": "True"})
    assert err.value.errors == {"force": "type check ('boolean') failed - got 'True'"}
    assert schema.verify(ep, {**base, "force": True}, form=False)["force"] is True
    assert schema.verify(ep, {**base, "force": "1"})["force"] is True


def test_perl_patterns_are_understood():
    ep, _ = endpoint("POST", "/access/users/root@pam/token/ci")
    assert schema.verify(ep, {"userid": "root@pam", "tokenid": "ci"})["tokenid"] == "ci"
    with pytest.raises(schema.ParamError):
        schema.verify(ep, {"userid": "root@pam", "tokenid": "9lives"})


def test_pve8_has_no_token_coefficient():
    ep, _ = endpoint("POST", "/cluster/config", major="8")
    with pytest.raises(schema.ParamError) as err:
        schema.verify(ep, {"clustername": "c", "token-coefficient": "125"})
    assert "token-coefficient" in err.value.errors


def test_shadow_passwords_are_checked_with_libcrypt() -> None:
    """Python 3.13 (Debian 13 nodes) has no crypt module; libxcrypt checks yescrypt and SHA-512 hashes."""
    import ctypes

    from pvelab.pve.api.auth import _libcrypt, shadow_crypt

    gensalt = _libcrypt().crypt_gensalt
    gensalt.restype = ctypes.c_char_p
    gensalt.argtypes = (ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int)
    for method in (b"$y$", b"$6$"):
        hashed = shadow_crypt("s3cret", gensalt(method, 0, None, 0).decode())
        assert hashed.startswith(method.decode())
        assert shadow_crypt("s3cret", hashed) == hashed
        assert shadow_crypt("wrong", hashed) != hashed
    assert shadow_crypt("s3cret", "!") == ""  # a locked account


def test_logins_at_once_do_not_crash_the_api_server() -> None:
    """crypt(3) keeps its result in a static buffer and ctypes drops the GIL during the call: without a
    lock, threads checking yescrypt passwords at once crashed pveproxy with SIGSEGV (two graders
    logging in together). Run in a child, so a crash is a failure here, not the end of the suite."""
    import subprocess
    import sys

    script = (
        "import ctypes, threading\n"
        "from pvelab.pve.api.auth import _libcrypt, shadow_crypt\n"
        "gensalt = _libcrypt().crypt_gensalt\n"
        "gensalt.restype = ctypes.c_char_p\n"
        "gensalt.argtypes = (ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int)\n"
        "hashed = shadow_crypt('s3cret', gensalt(b'$y$', 0, None, 0).decode())\n"
        "wrong = []\n"
        "def login():\n"
        "    for _ in range(20):\n"
        "        if shadow_crypt('s3cret', hashed) != hashed: wrong.append(1)\n"
        "threads = [threading.Thread(target=login) for _ in range(6)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(len(wrong))\n")
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert (child.returncode, child.stdout.strip()) == (0, "0"), child.stderr


def test_returns_validation_finds_what_breaks_the_schema() -> None:
    from pvelab.pve.api.schema import endpoints, returns_problems

    status = endpoints("9")["GET /nodes/{node}/status"].info["returns"]
    good = {"cpu": 0.0, "loadavg": ["0.1", "0.2", "0.3"], "pveversion": "pve-manager/9.1.1",
            "boot-info": {"mode": "efi"}, "cpuinfo": {"cores": 2, "cpus": 2, "model": "x", "sockets": 1},
            "current-kernel": {"machine": "x86_64", "release": "6.8", "sysname": "Linux", "version": "#1"},
            "memory": {"available": 1, "free": 1, "total": 2, "used": 1},
            "rootfs": {"avail": 1, "free": 1, "total": 2, "used": 1}, "uptime": 5}
    assert returns_problems(status, good) == []
    bad = {**good, "rootfs": {"avail": 1, "free": 1, "total": "2"}, "loadavg": [0.1]}
    del bad["cpu"]
    assert sorted(returns_problems(status, bad)) == [
        "data.loadavg[0]: float 0.1, expected string", "data.rootfs.total: str \"2\", expected integer",
        "data.rootfs: required property 'used' is missing", "data: required property 'cpu' is missing"]
    join = endpoints("9")["GET /cluster/config/join"].info["returns"]
    assert any("not in the schema" in p for p in returns_problems(join, {"nodelist": [], "preferred_node": "pve1",
                                                                          "totem": {}, "config_digest": "x",
                                                                          "extra": 1}))
    assert returns_problems(endpoints("9")["GET /cluster/config/totem"].info["returns"], None) == []  # PVE's null


def test_a_property_named_like_a_placeholder_validates_every_key_of_a_map() -> None:
    """/cluster/ceph/metadata's `mon` is {"{id}": {...}}: a map by daemon id, not a key named "{id}"."""
    metadata = {"type": "object", "properties": {"mon": {"type": "object", "properties": {
        "{id}": {"type": "object", "properties": {"hostname": {"type": "string"}}}}}}}
    two = {"mon": {"pve1@pve1": {"hostname": "pve1"}, "pve2@pve2": {"hostname": "pve2"}}}
    assert schema.returns_problems(metadata, two) == []
    assert schema.returns_problems(metadata, {"mon": {}}) == []
    assert schema.returns_problems(metadata, {"mon": {"pve1@pve1": {}}}) == [
        "data.mon.pve1@pve1: required property 'hostname' is missing"]
