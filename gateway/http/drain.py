"""A process's drain after SIGTERM, shared by the server (``serve.py``), the protocol, ``/readyz`` and streams.

The server puts one :class:`Drain` in the ASGI lifespan state under :data:`DRAIN`, so the protocol (its
``app_state``) and every request (``scope["state"]``) see the same object. Once it has begun:

- ``/readyz`` answers 503, so the load balancer (or Kubernetes' endpoints) stops sending new requests;
- every response carries ``Connection: close``, also on connections opened after the drain began (a
  load balancer that has not noticed yet is still served, once per connection);
- requests in flight, streams included, run to their end; when none is left the process exits 0;
- after ``seconds``, a stream still running is cut with an error event in its API's shape
  (:meth:`cut_streams`), and the process exits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

DRAIN = "switchyard.drain"  # the key in the lifespan state (and so in each request's scope["state"])
CUT_CODE = "gateway_draining"
CUT_MESSAGE = "The gateway is shutting down and ended this stream after its drain timeout; retry the request."


class Drain:
    __slots__ = ("seconds", "started", "streams")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: float | None = None  # time.monotonic() of the SIGTERM
        self.streams: set[Callable[[], None]] = set()  # a cut for each stream being sent now

    @property
    def draining(self) -> bool:
        return self.started is not None

    def begin(self) -> None:
        if self.started is None:
            self.started = time.monotonic()

    def overdue(self) -> bool:
        return self.started is not None and time.monotonic() - self.started >= self.seconds

    def cut_streams(self) -> int:
        """Cut every stream still being sent (each ends with its error event); how many there were."""
        cuts = list(self.streams)
        for cut in cuts:
            cut()
        return len(cuts)


def drain_of(state: Mapping[str, Any] | None) -> Drain | None:
    """The drain in a lifespan state or a request's ``scope["state"]``; None under a server that sets none."""
    drain = state.get(DRAIN) if state is not None else None
    return drain if isinstance(drain, Drain) else None
