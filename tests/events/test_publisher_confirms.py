"""The publisher's window of broker confirms (events.publisher.Confirms): a row is marked only when
every message up to its last is confirmed, whatever order the acks come in; a nack or a silent broker
stops the run at the first unconfirmed message."""

from collections import defaultdict

import pytest

from events.publisher import Confirms, PublishRefused


class FakeChannel:
    def __init__(self):
        self.events = defaultdict(set)
        self.selected = False

    def confirm_select(self):
        self.selected = True


class FakeConnection:
    """Hands the confirms the broker 'sends' to the channel's callbacks when drained."""

    def __init__(self, channel):
        self.channel, self.frames = channel, []

    def drain_events(self, timeout=None):
        if not self.frames:
            raise TimeoutError
        kind, tag, multiple = self.frames.pop(0)
        for callback in list(self.channel.events[f"basic_{kind}"]):
            callback(tag, multiple)


def confirms():
    channel = FakeChannel()
    connection = FakeConnection(channel)
    return Confirms(connection, channel), connection, channel


def test_it_puts_the_channel_in_confirm_mode_and_numbers_the_messages():
    window, _, channel = confirms()

    assert channel.selected
    assert window.sent(1) == 1 and window.sent(3) == 4  # a batch row's messages: its last tag


def test_it_counts_a_message_confirmed_only_when_all_before_it_are():
    window, connection, _ = confirms()
    window.sent(5)
    connection.frames = [("ack", 2, False), ("ack", 3, False), ("ack", 1, False)]

    with pytest.raises(PublishRefused, match="confirmed 3 of 5"):
        window.wait(timeout=0.1)
    assert window.confirmed == 3  # 1, 2, 3; 4 and 5 never came

    connection.frames = [("ack", 5, True)]  # "every tag up to 5"
    window.wait(timeout=0.1)
    assert window.confirmed == 5


def test_a_nack_stops_at_the_first_refused_message():
    window, connection, _ = confirms()
    window.sent(4)
    connection.frames = [("ack", 1, False), ("nack", 2, False), ("ack", 3, False), ("ack", 4, False)]

    with pytest.raises(PublishRefused, match="refused message 2"):
        window.wait(timeout=0.1)
    assert window.confirmed == 1  # rows up to message 1 are marked; from 2 on they are published again
