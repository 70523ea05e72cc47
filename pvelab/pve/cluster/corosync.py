"""ctypes bindings for the parts of corosync the cluster filesystem uses: CPG (closed process
groups: agreed-order messages and membership changes) and the quorum service.

Libraries are Debian's (libcpg4, libquorum5, installed with corosync).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass

CS_OK = 1
CS_ERR_TRY_AGAIN = 6
CS_DISPATCH_ALL = 2
CPG_TYPE_AGREED = 2
CPG_MAX_NAME = 128

cpg_handle_t = ctypes.c_uint64
quorum_handle_t = ctypes.c_uint64


class CorosyncError(Exception):
    def __init__(self, call: str, code: int) -> None:
        super().__init__(f"{call} failed (cs_error {code})")
        self.code = code


class CpgName(ctypes.Structure):
    _fields_ = [("length", ctypes.c_uint32), ("value", ctypes.c_char * CPG_MAX_NAME)]


class CpgAddress(ctypes.Structure):
    _fields_ = [("nodeid", ctypes.c_uint32), ("pid", ctypes.c_uint32), ("reason", ctypes.c_uint32)]


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


DeliverFn = ctypes.CFUNCTYPE(None, cpg_handle_t, ctypes.POINTER(CpgName), ctypes.c_uint32, ctypes.c_uint32,
                             ctypes.c_void_p, ctypes.c_size_t)
ConfchgFn = ctypes.CFUNCTYPE(None, cpg_handle_t, ctypes.POINTER(CpgName),
                             ctypes.POINTER(CpgAddress), ctypes.c_size_t,
                             ctypes.POINTER(CpgAddress), ctypes.c_size_t,
                             ctypes.POINTER(CpgAddress), ctypes.c_size_t)


class CpgCallbacks(ctypes.Structure):
    _fields_ = [("deliver", DeliverFn), ("confchg", ConfchgFn)]


QuorumNotifyFn = ctypes.CFUNCTYPE(None, quorum_handle_t, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_uint32,
                                  ctypes.POINTER(ctypes.c_uint32))


class QuorumCallbacks(ctypes.Structure):
    _fields_ = [("notify", QuorumNotifyFn)]


def _check(call: str, code: int) -> None:
    if code != CS_OK:
        raise CorosyncError(call, code)


@dataclass(frozen=True)
class Member:
    nodeid: int
    pid: int


class CpgGroup:
    """Membership in one CPG group. Callbacks run inside dispatch(), from the caller's thread."""

    def __init__(self, name: str, on_message: Callable[[int, int, bytes], None],
                 on_members: Callable[[list[Member], list[Member], list[Member]], None]) -> None:
        self.lib = ctypes.CDLL("libcpg.so.4")
        self.handle = cpg_handle_t()
        self.name = CpgName(len(name.encode()), name.encode())

        def deliver(_h, _group, nodeid, pid, msg, msg_len):
            on_message(nodeid, pid, ctypes.string_at(msg, msg_len))

        def confchg(_h, _group, members, n_members, left, n_left, joined, n_joined):
            def conv(arr, n):
                return [Member(arr[i].nodeid, arr[i].pid) for i in range(n)]
            on_members(conv(members, n_members), conv(left, n_left), conv(joined, n_joined))

        self._callbacks = CpgCallbacks(DeliverFn(deliver), ConfchgFn(confchg))  # kept alive with self
        _check("cpg_initialize", self.lib.cpg_initialize(ctypes.byref(self.handle), ctypes.byref(self._callbacks)))
        self._retry("cpg_join", lambda: self.lib.cpg_join(self.handle, ctypes.byref(self.name)))

    def _retry(self, call: str, fn: Callable[[], int], attempts: int = 100) -> None:
        """pmxcfs's retry on TRY_AGAIN (corosync syncing a membership): 100 times, 100 ms apart."""
        import time

        for _ in range(attempts):
            code = fn()
            if code != CS_ERR_TRY_AGAIN:
                _check(call, code)
                return
            time.sleep(0.1)
        raise CorosyncError(call, CS_ERR_TRY_AGAIN)

    def fileno(self) -> int:
        fd = ctypes.c_int()
        _check("cpg_fd_get", self.lib.cpg_fd_get(self.handle, ctypes.byref(fd)))
        return fd.value

    def local_nodeid(self) -> int:
        nodeid = ctypes.c_uint32()
        _check("cpg_local_get", self.lib.cpg_local_get(self.handle, ctypes.byref(nodeid)))
        return nodeid.value

    def dispatch(self) -> None:
        _check("cpg_dispatch", self.lib.cpg_dispatch(self.handle, CS_DISPATCH_ALL))

    def send(self, payload: bytes) -> None:
        buf = ctypes.create_string_buffer(payload, len(payload))
        iov = IoVec(ctypes.cast(buf, ctypes.c_void_p), len(payload))
        self._retry("cpg_mcast_joined",
                    lambda: self.lib.cpg_mcast_joined(self.handle, CPG_TYPE_AGREED, ctypes.byref(iov), 1))

    def close(self) -> None:
        self.lib.cpg_leave(self.handle, ctypes.byref(self.name))
        self.lib.cpg_finalize(self.handle)


class Quorum:
    """The quorum service: is this node's partition quorate right now?"""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libquorum.so.5")
        self.handle = quorum_handle_t()
        quorum_type = ctypes.c_uint32()
        self._callbacks = QuorumCallbacks(QuorumNotifyFn(lambda *_: None))
        _check("quorum_initialize", self.lib.quorum_initialize(
            ctypes.byref(self.handle), ctypes.byref(self._callbacks), ctypes.byref(quorum_type)))

    def quorate(self) -> bool:
        value = ctypes.c_int()
        _check("quorum_getquorate", self.lib.quorum_getquorate(self.handle, ctypes.byref(value)))
        return bool(value.value)

    def close(self) -> None:
        self.lib.quorum_finalize(self.handle)
