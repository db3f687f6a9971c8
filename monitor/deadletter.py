"""The dead-letter payload, shared by the ingest edge and the consumer.

Both sides write to the same topic in the same shape, so it lives here rather
than in either side (the ingest sources must not depend on the consumer runner).
"""

from __future__ import annotations

import base64
import time

import orjson

MAX_DEADLETTER_ORIGINAL = 64 * 1024  # bytes of the original kept in a dead letter


def deadletter_record(raw: bytes, source: str, reason: str, detail: str) -> bytes:
    """The dead-letter payload: original bytes (base64), where it came from and why.

    At most the first 64 KiB of the original are kept (``original_bytes`` is its full size), so a
    dead letter always fits in a Kafka record: a 2 MB payload must not turn into a letter the broker
    refuses (the ingest sink would retry it forever; the consumer's produce would raise).
    """
    doc = {"original": base64.b64encode(raw[:MAX_DEADLETTER_ORIGINAL]).decode(), "source": source, "reason": reason,
           "detail": detail, "ts": int(time.time() * 1000), "original_bytes": len(raw)}
    if len(raw) > MAX_DEADLETTER_ORIGINAL:
        doc["truncated"] = True
    return orjson.dumps(doc)
