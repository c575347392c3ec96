"""The publisher's frames (events.frames) are byte for byte what py-amqp's basic_publish writes for the
same message, a body longer than a frame included."""

import socket
import struct
import time

import pytest
from amqp import Message
from amqp.method_framing import frame_writer
from amqp.serialization import dumps
from amqp.spec import Basic
from amqp.transport import TCPTransport

from events.frames import Outgoing, confirms_take, publish_frames


class Capture:
    def __init__(self):
        self.data = b""

    def write(self, view):
        self.data += bytes(view)


class Tuned:
    def __init__(self, frame_max):
        self.frame_max = frame_max
        self.bytes_sent = 0


def _py_amqp(message, *, exchange, channel, frame_max):
    """py-amqp's own bytes for the message (channel.basic_publish without the socket)."""
    transport = Capture()
    write = frame_writer(Tuned(frame_max), transport)

    write(
        1,
        channel,
        Basic.Publish,
        dumps("Bssbb", (0, exchange, message.routing_key, False, False)),
        Message(
            message.body,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            message_id=message.message_id,
            timestamp=message.timestamp,
            type=message.type,
            application_headers={"tenant": message.tenant},
        ),
    )
    return transport.data


def _message(body):
    return Outgoing(
        routing_key="flow.entered",
        body=body,
        message_id="0b5c8b7e-8f0e-4c56-9d0a-3f1e2a6b7c8d",
        type="flow.entered",
        timestamp=1_796_000_000,
        tenant="shop_hu",
    )


@pytest.mark.parametrize("size", [0, 300, 5000])
def test_it_writes_the_bytes_py_amqp_writes(size):
    message = _message(('{"x": "' + "é" * size + '"}').encode())

    ours = publish_frames([message], exchange="crm.events", channel=1, frame_max=4096)

    assert ours == _py_amqp(message, exchange="crm.events", channel=1, frame_max=4096)


def test_it_writes_many_messages_back_to_back_in_order():
    first, second = _message(b'{"n": 1}'), _message(b'{"n": 2}')

    ours = publish_frames([first, second], exchange="crm.events", channel=2, frame_max=131072)

    expected = b"".join(
        _py_amqp(m, exchange="crm.events", channel=2, frame_max=131072) for m in (first, second)
    )
    assert ours == expected


def test_it_refuses_a_short_string_longer_than_the_protocol_allows():
    with pytest.raises(ValueError, match="at most 255 bytes"):
        publish_frames([_message(b"{}")], exchange="x" * 256, channel=1, frame_max=131072)


def _confirm_frame(channel, method, tag, bits):
    payload = struct.pack(">HHQB", 60, method, tag, bits)
    return struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce"


def _transport_over(sock):
    transport = object.__new__(TCPTransport)  # the socket handling only, without connecting
    transport.sock, transport._read_buffer = sock, b""
    return transport


def test_it_takes_the_confirms_that_arrived_and_leaves_any_other_frame_to_py_amqp():
    ours, broker = socket.socketpair()
    try:
        close = struct.pack(">BHI", 1, 1, 6) + struct.pack(">HHH", 20, 40, 200) + b"\xce"  # channel.close
        broker.sendall(
            _confirm_frame(1, 80, 1, 0)  # ack 1
            + _confirm_frame(1, 80, 3, 1)  # ack up to 3
            + _confirm_frame(1, 120, 4, 0)  # nack 4
            + close
            + _confirm_frame(1, 80, 5, 0)  # after the close: py-amqp's to read
        )
        transport = _transport_over(ours)
        time.sleep(0.05)

        assert confirms_take(transport, channel=1) == [(True, 1, False), (True, 3, True), (False, 4, False)]
        assert transport._read_buffer.startswith(close)
        assert confirms_take(transport, channel=1) == []  # the close stays at the head
    finally:
        ours.close()
        broker.close()


def test_it_takes_nothing_of_another_channel_or_a_partial_frame_and_never_blocks():
    ours, broker = socket.socketpair()
    try:
        transport = _transport_over(ours)
        assert confirms_take(transport, channel=1) == []  # nothing arrived: returns at once
        frame = _confirm_frame(1, 80, 7, 0)
        broker.sendall(_confirm_frame(2, 80, 1, 0))
        time.sleep(0.05)
        assert confirms_take(transport, channel=1) == []
        transport._read_buffer = b""
        broker.sendall(frame[:10])
        time.sleep(0.05)
        assert confirms_take(transport, channel=1) == []
        assert transport._read_buffer == frame[:10]  # kept for the rest of the frame
        broker.sendall(frame[10:])
        time.sleep(0.05)
        assert confirms_take(transport, channel=1) == [(True, 7, False)]
        assert transport._read_buffer == b""
    finally:
        ours.close()
        broker.close()
