"""The replicated config tree: operations, persistence, and agreement over a simulated CPG."""

import base64
import collections
import errno
import threading

import pytest

from pvelab.pve.cluster.configdb import ConfigDB, OpError
from pvelab.pve.cluster.dfsm import NotReady, Replicator


def write(path, text):
    return {"op": "write", "path": path, "data": base64.b64encode(text.encode()).decode()}


def test_operations_and_persistence(tmp_path):
    db = ConfigDB(tmp_path / "config.db")
    db.apply({"op": "mkdir", "path": "nodes"})
    db.apply(write("nodes/a.cfg", "x"))
    db.apply({"op": "rename", "path": "nodes", "to": "n2"})
    assert db.children("") == ["n2"] and db.read("n2/a.cfg") == b"x"
    again = ConfigDB(tmp_path / "config.db")
    assert again.read("n2/a.cfg") == b"x" and again.version == 3 and again.digest() == db.digest()


@pytest.mark.parametrize("op,code", [
    (write("missing/file", "x"), errno.ENOENT),
    ({"op": "rmdir", "path": "d"}, errno.ENOTEMPTY),
    ({"op": "unlink", "path": "d"}, errno.EISDIR),
    ({"op": "mkdir", "path": "d"}, errno.EEXIST),
])
def test_invalid_operations_are_refused(op, code):
    db = ConfigDB(None)
    db.apply({"op": "mkdir", "path": "d"})
    db.apply(write("d/f", "x"))
    with pytest.raises(OpError) as err:
        db.apply(op)
    assert err.value.errno == code


class Bus:
    """CPG's guarantees, in process: one stream of messages and membership changes, delivered
    to every member in the same order; a message sent from a callback is queued, not nested."""

    def __init__(self):
        self.members = {}
        self.queue = collections.deque()
        self.pumping = False

    def join(self, member, replicator):
        self.members[member] = replicator
        self._post(("confchg", None, None))

    def leave(self, member):
        del self.members[member]
        self._post(("confchg", None, None))

    def sender(self, member):
        return lambda payload: self._post(("msg", member, payload))

    def _post(self, event):
        self.queue.append((event, dict(self.members)))
        if self.pumping:
            return
        self.pumping = True
        try:
            while self.queue:
                (kind, sender, payload), members = self.queue.popleft()
                for member, rep in sorted(members.items()):
                    if kind == "confchg":
                        rep.on_members(member, list(members))
                    else:
                        rep.on_message(sender, payload)
        finally:
            self.pumping = False


def make(bus, nodeid, quorate=lambda: True, db=None):
    member = (nodeid, 100 + nodeid)
    rep = Replicator(db or ConfigDB(None), bus.sender(member), quorate)
    return member, rep


def test_a_write_on_one_member_is_applied_everywhere():
    bus = Bus()
    reps = [make(bus, i) for i in (1, 2, 3)]
    for member, rep in reps:
        bus.join(member, rep)
    reps[1][1].submit(write("storage.cfg", "dir: local"))
    assert {rep.db.read("storage.cfg") for _, rep in reps} == {b"dir: local"}
    assert len({rep.db.digest() for _, rep in reps}) == 1


def test_writes_without_quorum_are_refused():
    bus = Bus()
    member, rep = make(bus, 1, quorate=lambda: False)
    bus.join(member, rep)
    with pytest.raises(NotReady) as err:
        rep.submit(write("x", "y"), timeout=0.1)
    assert err.value.errno == errno.EACCES and "no quorum" in str(err.value)


def test_a_write_waits_for_its_own_message_however_long_corosync_takes():
    """pmxcfs waits for its message without a deadline (a loaded cluster can take more than 10 s)."""
    held = []
    rep = Replicator(ConfigDB(None), held.append, lambda: True)
    rep.on_members((1, 1), [(1, 1)])
    rep.on_message((1, 1), held.pop())  # the state exchange: synced
    writer = threading.Thread(target=rep.submit, args=(write("late", "1"),))
    writer.start()
    writer.join(0.3)
    assert writer.is_alive() and held, "the write returned before its message came back"
    rep.on_message((1, 1), held.pop())
    writer.join(2)
    assert not writer.is_alive() and rep.db.read("late") == b"1"


def test_a_lost_connection_releases_a_waiting_write_with_eacces():
    held = []
    rep = Replicator(ConfigDB(None), held.append, lambda: True)
    rep.on_members((1, 1), [(1, 1)])
    rep.on_message((1, 1), held.pop())
    failures = []

    def attempt():
        try:
            rep.submit(write("lost", "1"))
        except NotReady as exc:
            failures.append(exc.errno)
    writer = threading.Thread(target=attempt)
    writer.start()
    writer.join(0.3)
    rep.on_disconnect()
    writer.join(2)
    assert failures == [errno.EACCES] and rep.db.read("lost") is None


def test_a_rejoining_member_takes_the_newer_tree():
    bus = Bus()
    (m1, r1), (m2, r2), (m3, r3) = make(bus, 1), make(bus, 2), make(bus, 3)
    for m, r in ((m1, r1), (m2, r2), (m3, r3)):
        bus.join(m, r)
    bus.leave(m3)  # cut off: it keeps its old tree
    r1.submit(write("written-while-away", "1"))
    r2.submit(write("also", "2"))
    assert r3.db.read("written-while-away") is None
    bus.join(m3, r3)
    assert r3.db.read("written-while-away") == b"1" and r3.db.read("also") == b"2"
    assert r3.synced.is_set() and r3.db.digest() == r1.db.digest()


def test_a_wiped_joiner_never_overwrites_the_cluster():
    bus = Bus()
    (m1, r1) = make(bus, 1)
    bus.join(m1, r1)
    r1.submit(write("corosync.conf", "cluster"))
    joiner_db = ConfigDB(None)
    joiner_db.apply(write("local-only", "x"))
    joiner_db.replace({"version": 0, "entries": {}})  # a joiner takes the cluster's tree
    m2, r2 = make(bus, 2, db=joiner_db)
    bus.join(m2, r2)
    assert r2.db.read("corosync.conf") == b"cluster" and r1.db.read("local-only") is None


def test_vmlist_lists_every_guest_config_of_every_node() -> None:
    """pmxcfs's .vmlist, which nextid and /cluster/resources read."""
    import base64

    from pvelab.pve.cluster.cfs import vmlist

    db = ConfigDB(None)
    for path in ("nodes", "nodes/pve1", "nodes/pve1/qemu-server", "nodes/pve2", "nodes/pve2/lxc"):
        db.apply({"op": "mkdir", "path": path})
    for path in ("nodes/pve1/qemu-server/100.conf", "nodes/pve2/lxc/201.conf", "nodes/pve2/lxc/notes.txt"):
        db.apply({"op": "write", "path": path, "data": base64.b64encode(b"memory: 512\n").decode()})
    listed = vmlist(db)
    assert {vmid: (e["node"], e["type"]) for vmid, e in listed.items()} == {"100": ("pve1", "qemu"),
                                                                            "201": ("pve2", "lxc")}


def lock_db():
    db = ConfigDB(None)
    for path in ("priv", "priv/lock"):
        db.apply({"op": "mkdir", "path": path, "mtime": 0})
    db.apply({"op": "mkdir", "path": "priv/lock/ha_agent_pve1_lock", "writer": "pve1", "mtime": 1000})
    return db


def test_a_lock_is_renewed_only_by_its_writer():
    db = lock_db()
    db.apply({"op": "utime", "path": "priv/lock/ha_agent_pve1_lock", "time": 1050, "writer": "pve1", "mtime": 1050})
    assert db.get("priv/lock/ha_agent_pve1_lock").mtime == 1050
    with pytest.raises(OpError) as err:
        db.apply({"op": "utime", "path": "priv/lock/ha_agent_pve1_lock", "time": 1060, "writer": "pve2",
                  "mtime": 1060})
    assert err.value.errno == errno.EACCES


@pytest.mark.parametrize("now,removed", [(1119, False), (1121, True)])
def test_an_unlock_request_removes_only_a_lock_older_than_120_s(now, removed):
    db = lock_db()
    db.apply({"op": "utime", "path": "priv/lock/ha_agent_pve1_lock", "time": 0, "writer": "pve2", "mtime": now})
    assert (db.get("priv/lock/ha_agent_pve1_lock") is None) == removed
