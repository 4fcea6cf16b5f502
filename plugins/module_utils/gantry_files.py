# Copyright: Gantry contributors
# MIT License (see the repository)
"""Files Gantry's modules keep on a host: a lock on their directory, and replacing one whole.

deploy_lock and release_state both read a small file, decide, and write it back. Runs of
them on the same host would otherwise interleave between the read and the write, and a
reader could see a file half written. Python 3 standard library only.
"""

from __future__ import annotations

import fcntl
import os
import tempfile


class DirectoryLock:
    """An flock on the directory of path for as long as this run looks at and changes it.

    Held exclusively, it keeps two runs that change a file there from both reading the old
    file and one of them losing its change (or both breaking the same expired lock). Held
    shared (``exclusive=False``), it lets runs that only read look at once, while none of
    them sees a change half made.
    """

    def __init__(self, path, exclusive=True):
        self.directory = os.path.dirname(path) or "."
        self.operation = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.directory, os.O_RDONLY)
        fcntl.flock(self.fd, self.operation)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing releases the flock


def replace_file(path, content, prefix):
    """Replace path with content in one step: a reader sees the old file or the new one,
    never a part, and the path never is without a file in between.

    The file gets mode 0644, owned by root when this runs as root. The temporary file,
    named with prefix, is made in path's directory (a rename is atomic only within one
    file system) and removed if anything fails.
    """
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix)
    try:
        os.fchmod(fd, 0o644)
        if os.geteuid() == 0:
            os.fchown(fd, 0, 0)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    # The rename is only durable once the directory entry is on disk too.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
