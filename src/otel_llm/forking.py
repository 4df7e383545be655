"""Fork hooks that do not keep their owner alive.

Everything that owns a thread, lock, socket or file rebuilds it in a forked child
(gunicorn ``--preload``, multiprocessing). ``os.register_at_fork`` holds its
callbacks forever, so each registers a weak reference to its bound method.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable

__all__ = ["after_fork_in_child"]


def after_fork_in_child(method: Callable[[], None]) -> None:
    """Call the bound ``method`` in every forked child while its object is alive."""
    if not hasattr(os, "register_at_fork"):
        return
    ref = weakref.WeakMethod(method)

    def call() -> None:
        bound = ref()
        if bound is not None:
            bound()

    os.register_at_fork(after_in_child=call)
