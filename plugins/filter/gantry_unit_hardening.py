# Copyright: Gantry contributors
# MIT License (see the repository)
"""Jinja filter ``gantry_unit_hardening``: the [Service] lines that confine every unit of
an app (Gunicorn's instances, the app's processes and timers), written once so that each
gets the same sandbox and `systemd-analyze security` rates them alike.

    {{ gunicorn_read_write_paths | gantry_unit_hardening(gunicorn_memory_deny_write_execute) }}

The service may write only to its state and runtime directories and to the read-write
paths given. MemoryDenyWriteExecute= is optional: it breaks libraries that build code at
run time (cffi callbacks, pycares).
"""

BEFORE_PATHS = [
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
    "ProtectSystem=strict",
]
AFTER_PATHS = [
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "PrivateIPC=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "ProtectProc=invisible",
    "ProcSubset=pid",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "RemoveIPC=yes",
    "LockPersonality=yes",
]
AFTER_MEMORY = [
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged @resources",
    "SystemCallErrorNumber=EPERM",
    "DevicePolicy=closed",
    "KeyringMode=private",
    "UMask=0027",
]


def gantry_unit_hardening(read_write_paths, memory_deny_write_execute=True):
    lines = list(BEFORE_PATHS)
    if read_write_paths:
        lines.append("ReadWritePaths=" + " ".join(read_write_paths))
    lines += AFTER_PATHS
    if memory_deny_write_execute:
        lines.append("MemoryDenyWriteExecute=yes")
    return "\n".join(lines + AFTER_MEMORY)


class FilterModule:
    def filters(self):
        return {"gantry_unit_hardening": gantry_unit_hardening}
