"""Offline stand-in for the get-pip.py that ansible-test downloads to bootstrap pip in its
sanity virtualenvs (from ci-files.testing.ansible.com, which this machine cannot reach).

ansible-test runs it as ``python get_pip_X_Y.py --disable-pip-version-check pip==X.Y
--no-setuptools --no-wheel`` inside an empty virtualenv: pip comes from the interpreter's
own ensurepip, then upgrades itself to the pinned version from the package index the
machine's pip configuration names.
"""

import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")

wanted = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "ensurepip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *wanted])
