"""The ids of a batch row's events (events.batches.event_uuid): RFC 4122 version 5 UUIDs of the row's
event id and the event's key, exactly what uuid.uuid5 gives (the ids consumers saw before stay)."""

import uuid

from events.batches import event_uuid


def test_it_gives_the_uuid5_of_the_row_and_the_key():
    for index in range(2000):
        namespace = uuid.uuid4()
        for key in (index, 10**12 + index, f"run-{index}", "", "ő" * (index % 7)):
            assert event_uuid(namespace, key) == str(uuid.uuid5(namespace, str(key)))
