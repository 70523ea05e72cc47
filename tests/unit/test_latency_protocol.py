import struct

import pytest

from pvelab.twin import latency


def test_bind_messages_are_nfqueue_config_requests():
    bind, params = latency.bind_messages(7)
    for msg in (bind, params):
        length, msg_type, flags = struct.unpack_from("=IHH", msg)
        assert length == len(msg)
        assert msg_type == (latency.NFNL_SUBSYS_QUEUE << 8) | latency.NFQNL_MSG_CONFIG
        assert flags & latency.NLM_F_REQUEST
        assert struct.unpack_from("!H", msg, 18)[0] == 7  # queue number, network order


def test_verdict_accepts_the_given_packet_id():
    msg = latency.verdict_message(7, 0xABCDEF)
    verdict, packet_id = struct.unpack_from("!II", msg, len(msg) - 8)
    assert (verdict, packet_id) == (latency.NF_ACCEPT, 0xABCDEF)


def _packet(packet_id: int) -> bytes:
    hdr = struct.pack("!IHB", packet_id, 0x0800, 3) + b"\0"
    attr = struct.pack("=HH", 4 + 7, latency.NFQA_PACKET_HDR) + hdr[:7] + b"\0"
    body = struct.pack("=BBH", 2, 0, 0) + attr
    return struct.pack("=IHHII", 16 + len(body), (3 << 8) | latency.NFQNL_MSG_PACKET, 0, 0, 0) + body


def test_packet_ids_are_read_from_every_message_in_a_datagram():
    assert latency.packet_ids(_packet(1) + _packet(42)) == [1, 42]


def test_other_messages_are_ignored():
    error = struct.pack("=IHHII", 20, latency.NLMSG_ERROR, 0, 0, 0) + b"\0" * 4
    assert latency.packet_ids(error + _packet(5)) == [5]


@pytest.mark.parametrize("text,seconds", [("5ms", 0.005), ("0.2s", 0.2), ("20", 0.02), ("0", 0.0)])
def test_parse_delay(text, seconds):
    assert latency.parse_delay(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["fast", "-1ms", "11s"])
def test_parse_delay_refuses_nonsense(text):
    with pytest.raises(ValueError):
        latency.parse_delay(text)
