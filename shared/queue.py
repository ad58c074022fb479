"""A work queue on Redis Streams with consumer groups: at-least-once delivery that survives dead workers.

A message stays pending in its group until a consumer acknowledges it. A consumer that dies leaves its messages
pending; after the visibility timeout another consumer claims them (XAUTOCLAIM). A long task keeps its claim
fresh with `touch`, so it is not taken away while its worker is alive. Messages that cannot succeed go to a
dead-letter stream, with their error, so nothing disappears silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis
from redis.typing import EncodableT, FieldT

GROUP = "argus-workers"


@dataclass(frozen=True)
class Message:
    stream: str
    message_id: str
    fields: dict[str, str]


class StreamQueue:
    """Over a client made with decode_responses=True: ids and fields come back as str."""

    def __init__(self, client: redis.Redis, stream: str, dead_letter_stream: str) -> None:
        self.client = client
        self.stream = stream
        self.dead_letter_stream = dead_letter_stream

    def ensure_group(self) -> None:
        """Creates the stream and its consumer group once; later calls do nothing."""
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def put(self, fields: dict[FieldT, EncodableT]) -> str:
        return cast(str, self.client.xadd(self.stream, fields))

    def reclaim(self, consumer: str, visibility_timeout_s: float, count: int = 10) -> list[Message]:
        """Messages whose consumer has been silent longer than the visibility timeout, now ours."""
        _, claimed, *_ = self.client.xautoclaim(
            self.stream, GROUP, consumer, min_idle_time=int(visibility_timeout_s * 1000), start_id="0-0", count=count
        )
        entries = cast("list[tuple[str, dict[str, str] | None]]", claimed)
        # An entry deleted from the stream while pending comes back without fields: nothing is left to run.
        return [Message(self.stream, mid, fields) for mid, fields in entries if fields is not None]

    def take(self, consumer: str, block_s: float, count: int = 1) -> list[Message]:
        """New messages for this consumer, waiting up to block_s for one."""
        answer = self.client.xreadgroup(GROUP, consumer, {self.stream: ">"}, count=count, block=int(block_s * 1000))
        streams = cast("list[tuple[str, list[tuple[str, dict[str, str]]]]] | None", answer)
        return [Message(self.stream, mid, fields) for _, messages in streams or [] for mid, fields in messages]

    def touch(self, consumer: str, message_id: str) -> None:
        """Resets the message's idle time, so it is not reclaimed while its consumer is working on it."""
        self.client.xclaim(self.stream, GROUP, consumer, min_idle_time=0, message_ids=[message_id], justid=True)

    def ack(self, message_id: str) -> None:
        self.client.xack(self.stream, GROUP, message_id)

    def dead_letter(self, message: Message, error: str) -> None:
        """Copies the message and its error to the dead-letter stream, then acknowledges it."""
        entry = dict[FieldT, EncodableT](message.fields.items())
        entry["stream"], entry["error"] = self.stream, error
        pipe = self.client.pipeline()
        pipe.xadd(self.dead_letter_stream, entry)
        pipe.xack(self.stream, GROUP, message.message_id)
        pipe.execute()
