"""Added latency on a node's links, without netem (this host's kernel may lack sch_netem).

Packets leaving the node's eth0/eth1 are sent to an NFQUEUE by an iptables rule in the node's
network namespace; this daemon, running in that namespace, holds each one for the delay and
then accepts it. Like `tc qdisc add dev ethX root netem delay D`, it delays egress only, so a
round trip to the node grows by D. `--queue-bypass` lets packets pass if the daemon is gone.

The NFQUEUE protocol is spoken directly over netlink (no C binding needed): bind a queue,
ask for packet metadata only, answer each packet id with NF_ACCEPT when its time has come.
"""

from __future__ import annotations

import argparse
import collections
import os
import select
import signal
import socket
import struct
import sys
import time

from pvelab.twin.host import run

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS = 1, 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
QUEUE_NUM = 7  # our queue in the node's namespace


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def _message(msg_type: int, queue: int, attrs: bytes, seq: int = 0) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, NLM_F_REQUEST,
                       seq, 0) + body


def bind_messages(queue: int) -> list[bytes]:
    cmd = _attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0))
    params = _attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
    return [_message(NFQNL_MSG_CONFIG, queue, cmd, 1), _message(NFQNL_MSG_CONFIG, queue, params, 2)]


def verdict_message(queue: int, packet_id: int) -> bytes:
    return _message(NFQNL_MSG_VERDICT, queue, _attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)))


def packet_ids(datagram: bytes) -> list[int]:
    """Packet ids of every NFQNL_MSG_PACKET in one netlink datagram."""
    ids, offset = [], 0
    while offset + 16 <= len(datagram):
        length, msg_type = struct.unpack_from("=IH", datagram, offset)
        if length < 16:
            break
        if msg_type == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            pos, end = offset + 20, offset + length
            while pos + 4 <= end:
                alen, akind = struct.unpack_from("=HH", datagram, pos)
                if alen < 4:
                    break
                if akind & 0x7FFF == NFQA_PACKET_HDR:
                    ids.append(struct.unpack_from("!I", datagram, pos + 4)[0])
                pos += (alen + 3) & ~3
        offset += (length + 3) & ~3
    return ids


def iptables_rules(ifnames: list[str], queue: int = QUEUE_NUM) -> list[list[str]]:
    """Rule specs for `iptables -t mangle -A|-D ...` in the node's namespace."""
    return [["POSTROUTING", "-o", ifname, "-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass"]
            for ifname in ifnames]


def add_rules(netns: str, ifnames: list[str]) -> None:
    for rule in iptables_rules(ifnames):
        run(["ip", "netns", "exec", netns, "iptables", "-t", "mangle", "-A", *rule])


def remove_rules(netns: str, ifnames: list[str]) -> None:
    for rule in iptables_rules(ifnames):
        run(["ip", "netns", "exec", netns, "iptables", "-t", "mangle", "-D", *rule], check=False)


def daemon_argv(netns: str, delay_ms: float) -> list[str]:
    return ["ip", "netns", "exec", netns, sys.executable, "-m", "pvelab.twin.latency", "--delay-ms", str(delay_ms)]


def queue_bound(netns: str, queue: int = QUEUE_NUM) -> bool:
    """Whether a process has bound our NFQUEUE in the node's namespace (the kernel lists bound queues)."""
    table = run(["ip", "netns", "exec", netns, "cat", "/proc/net/netfilter/nfnetlink_queue"], check=False)
    return any(line.split()[0] == str(queue) for line in table.splitlines() if line.strip())


def serve(delay: float, queue: int = QUEUE_NUM) -> None:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.bind((0, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    for message in bind_messages(queue):
        sock.send(message)
    held: collections.deque[tuple[float, int]] = collections.deque()
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    while running:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else 0.5
        readable, _, _ = select.select([sock], [], [], timeout)
        if readable:
            now = time.monotonic()
            for packet_id in packet_ids(sock.recv(1 << 16)):
                held.append((now + delay, packet_id))
        now = time.monotonic()
        while held and held[0][0] <= now:
            sock.send(verdict_message(queue, held.popleft()[1]))
    for _, packet_id in held:  # let everything still held go before leaving
        sock.send(verdict_message(queue, packet_id))
    sock.close()


def parse_delay(text: str) -> float:
    """'5ms', '0.2s', '5' (milliseconds) -> seconds; 0 clears."""
    value = text.strip().lower()
    try:
        if value.endswith("ms"):
            seconds = float(value[:-2]) / 1000
        elif value.endswith("s"):
            seconds = float(value[:-1])
        else:
            seconds = float(value) / 1000
    except ValueError:
        raise ValueError(f"cannot read '{text}' as a delay; write it like 5ms or 0.2s") from None
    if not 0 <= seconds <= 10:
        raise ValueError(f"delay {text} is out of range; use 0 to 10s")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pvelab-latency")
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--queue", type=int, default=QUEUE_NUM)
    args = parser.parse_args(argv)
    print(f"latency daemon {os.getpid()}: holding egress packets {args.delay_ms} ms", flush=True)
    serve(args.delay_ms / 1000, args.queue)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
