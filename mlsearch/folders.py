"""Publishing a folder whole: a finished staging folder takes the place of the old one in one rename."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def replace_folder(staging: Path, final: Path) -> None:
    """Rename the finished ``staging`` folder to ``final``, replacing what is there only once the new one is whole.

    The old folder is renamed aside first (``.<name>.old-<pid>``) and removed after the new one is in place, so
    that ``final`` is never missing for longer than between two renames, and never half-written.
    """
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
