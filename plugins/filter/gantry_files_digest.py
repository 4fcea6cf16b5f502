# Copyright: Gantry contributors
# MIT License (see the repository)
"""Jinja filter ``gantry_files_digest``: one sha256 of the files under some directories.

    code: "{{ [playbook_dir ~ '/../roles', playbook_dir ~ '/../plugins'] | gantry_files_digest }}"

Names (relative to each directory) and contents only, so two checkouts of the same
commit give the same digest whatever their owner, umask or timestamps; Python's byte code
caches are left out. Links are followed; a link to nothing counts by where it points. A
directory that does not exist counts as empty.
"""

import hashlib
import os


def gantry_files_digest(directories):
    digest = hashlib.sha256()
    for number, directory in enumerate(directories):
        digest.update(b"%d\0" % number)
        for top, dirs, files in os.walk(directory, followlinks=True):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(f for f in files if not f.endswith(".pyc")):
                path = os.path.join(top, name)
                digest.update(os.path.relpath(path, directory).encode() + b"\0")
                if os.path.exists(path):
                    with open(path, "rb") as handle:
                        digest.update(hashlib.sha256(handle.read()).digest())
                else:  # a link to nothing: where it points is all there is
                    digest.update(b"->" + os.readlink(path).encode())
    return digest.hexdigest()


class FilterModule:
    def filters(self):
        return {"gantry_files_digest": gantry_files_digest}
