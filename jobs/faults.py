"""Named fault points, for proving that a job killed between two writes resumes to the same tables.

Set ``PORTRAIT_FAULT`` to a point's name (``after_write:labels``) and the job raises
:class:`InjectedFault` there; with a ``:kill`` suffix (``after_write:labels:kill``) the process
SIGKILLs itself, as an out-of-memory kill or a lost node would. Unset, a fault point does nothing.
"""
from __future__ import annotations

import os
import signal
FAULT_ENV = "PORTRAIT_FAULT"


class InjectedFault(RuntimeError):
    """The failure ``PORTRAIT_FAULT`` asked for."""


def fault_point(name: str) -> None:
    wanted = os.environ.get(FAULT_ENV, "")
    if wanted == name:
        raise InjectedFault(f"{FAULT_ENV}={wanted}: failing at {name}")
    if wanted == f"{name}:kill":
        os.kill(os.getpid(), signal.SIGKILL)
