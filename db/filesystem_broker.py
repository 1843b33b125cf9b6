"""The embedded default's broker (``filesystem://``): Kombu's filesystem transport, with atomic publishes.

Kombu's ``filesystem`` transport creates a message file under its final name and then writes it, while a
consumer moves away any file with a matching name as soon as it lists the folder; a consumer that lists
between the two reads an empty file, and ``json.loads`` raises in the worker's main loop, which Celery
treats as unrecoverable: the worker exits (seen once in a clean-clone run of the test suite). Here a
message is written under a name no consumer matches and renamed into place (``os.replace`` is atomic
on POSIX), with a fixed-width nanosecond prefix so that the name order consumers follow is the publish
order; and a consumer that still meets an unreadable file (written by another program) logs and skips
it: the job row stays ``queued`` and the reaper publishes it again. The API and the workers both select
this class via Celery's ``broker_transport`` when the broker URL is ``filesystem://``.
"""

import logging
import os
import uuid
from queue import Empty
from time import monotonic_ns
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

log = logging.getLogger(__name__)

TRANSPORT = "db.filesystem_broker:Transport"  # Celery's ``broker_transport`` for filesystem:// URLs
PARTIAL_SUFFIX = ".part"  # consumers match ``<name>.<queue>.msg`` exactly, so these are never picked up


class Channel(filesystem.Channel):
    # kombu's base class names the argument ``message`` and its filesystem Channel ``payload``; callers pass it
    # positionally, so either name is right and no override can satisfy both for mypy.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Write the message beside its final name, then rename it into place."""
        # nanoseconds, fixed width: consumers take files in name order, so this keeps publishes FIFO
        # (kombu's millisecond prefix leaves messages of the same millisecond in random order)
        name = f"{monotonic_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        """The next message of ``queue``; an unreadable message file is logged and skipped."""
        try:
            return super()._get(queue)
        except ValueError:  # json.JSONDecodeError: an empty or truncated file
            log.warning("skipped an unreadable message file in queue %r (its job is re-published by the reaper)",
                        queue, exc_info=True)
            raise Empty() from None


class Transport(filesystem.Transport):
    Channel = Channel
