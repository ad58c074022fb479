"""A work queue on Redis Streams with consumer groups: at-least-once delivery that survives dead workers.

A message stays pending in its group until a consumer acknowledges it. A consumer that dies leaves its messages
pending; after the visibility timeout another consumer claims them (XAUTOCLAIM). A long task keeps its claim
fresh with `touch`, so it is not taken away while its worker is alive. Messages that cannot succeed go to a
dead-letter stream, with their error, so nothing disappears silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

GROUP = "argus-workers"


@dataclass(frozen=True)
class Message:
    stream: str
    message_id: str
    fields: dict[str, str]
    reclaimed: bool  # taken over from a consumer that went silent


class StreamQueue:
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

    def put(self, fields: dict[str, str]) -> str:
        return self.client.xadd(self.stream, fields)  # type: ignore[arg-type,return-value]

    def reclaim(self, consumer: str, visibility_timeout_s: float, count: int = 10) -> list[Message]:
        """Messages whose consumer has been silent longer than the visibility timeout, now ours."""
        _, claimed, *_ = self.client.xautoclaim(
            self.stream, GROUP, consumer, min_idle_time=int(visibility_timeout_s * 1000), start_id="0-0", count=count
        )
        return [Message(self.stream, mid, fields, True) for mid, fields in claimed if fields is not None]

    def take(self, consumer: str, block_s: float, count: int = 1) -> list[Message]:
        """New messages for this consumer, waiting up to block_s for one."""
        answer = self.client.xreadgroup(GROUP, consumer, {self.stream: ">"}, count=count, block=int(block_s * 1000))
        return [Message(self.stream, mid, fields, False) for _, messages in answer or [] for mid, fields in messages]

    def touch(self, consumer: str, message_id: str) -> None:
        """Resets the message's idle time, so it is not reclaimed while its consumer is working on it."""
        self.client.xclaim(self.stream, GROUP, consumer, min_idle_time=0, message_ids=[message_id], justid=True)

    def ack(self, message_id: str) -> None:
        self.client.xack(self.stream, GROUP, message_id)

    def dead_letter(self, message: Message, error: str) -> None:
        """Copies the message and its error to the dead-letter stream, then acknowledges it."""
        pipe = self.client.pipeline()
        pipe.xadd(self.dead_letter_stream, {**message.fields, "stream": self.stream, "error": error})
        pipe.xack(self.stream, GROUP, message.message_id)
        pipe.execute()

    def pending_count(self) -> int:
        return int(self.client.xpending(self.stream, GROUP)["pending"])
