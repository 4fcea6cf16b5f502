"""Filters that turn the app's start-up output into a failure message safe to print.

The pre-switch check runs the app's import as the service would; a traceback from there
can quote the settings it failed with: a DSN with its password, a token in a URL. The
whole output stays in the host's journal; Ansible only ever shows what these return.
"""

import json
import re
from urllib.parse import quote, quote_plus

MASK = "********"

# Shorter values are left alone: masking "1" or "on" everywhere would wreck the message
# (line numbers, exit codes, words), and a value that short guards nothing anyway.
MIN_SECRET_LENGTH = 4

# Credentials in a URL (postgresql://user:password@host/db, redis://:password@host),
# masked even when the DSN is not among the secrets. A password may hold an unescaped "@"
# or "/": the greedy match runs to the last "@" before a space or quote, masking too much
# rather than too little.
URL_PASSWORD_RE = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*:)[^\s'\"]+@")

TRACEBACK_START = "Traceback (most recent call last):"
# Lines that tell the operator nothing: Python 3.11+'s markers under the failing
# expression, and the import machinery's own frames, which would crowd the app's out.
NOISE_RE = re.compile(r'^\s*([\^~]+|File "<frozen [^>]*>", line \d+, in \S+)\s*$')


def _spellings(value):
    """How a value can appear in output: as is, escaped in a repr or JSON, percent-encoded."""
    text = value if isinstance(value, str) else str(value)
    yield text
    yield repr(text)[1:-1]
    yield json.dumps(text)[1:-1]
    yield json.dumps(text, ensure_ascii=False)[1:-1]
    yield quote(text, safe="")
    yield quote(text)
    yield quote_plus(text)


def mask_secrets(text, secrets=(), min_length=MIN_SECRET_LENGTH):
    """text with every secret value (any spelling of it) and URL password as MASK."""
    if isinstance(secrets, dict):
        secrets = secrets.values()
    if isinstance(secrets, (str, bytes)):
        secrets = [secrets]
    found = set()
    for value in secrets or ():
        # Booleans are written as 1/0 and are no secret; None is no value.
        if value is None or isinstance(value, bool):
            continue
        found.update(s for s in _spellings(value) if len(s) >= int(min_length))
    text = "" if text is None else str(text)
    if found:
        # Longest first: a value holding another is masked whole, in one pass.
        pattern = "|".join(re.escape(s) for s in sorted(found, key=len, reverse=True))
        text = re.sub(pattern, MASK, text)
    return URL_PASSWORD_RE.sub(lambda m: m.group(1) + MASK + "@", text)


def _trim(line, width):
    return line if len(line) <= width else line[: width - 3] + "..."


def _cause(lines):
    """The exception (type: message) that ended the last traceback, else gunicorn's own
    "Error: ..." line, else the last line."""
    starts = [i for i, line in enumerate(lines) if line.strip() == TRACEBACK_START]
    if starts:
        # Frames and their code are indented; the exception is the first line that is not.
        for line in lines[starts[-1] + 1:]:
            if not line[:1].isspace():
                return line.strip()
    errors = [line.strip() for line in lines if line.startswith("Error:")]
    if errors:
        return errors[-1]
    return lines[-1].strip() if lines else ""


def failure_summary(text, secrets=(), head=2, tail=8, width=300,
                    min_length=MIN_SECRET_LENGTH):
    """What the operator needs from a failed start, secrets masked.

    Returns {cause, excerpt, omitted}: the exception type and message, the first head
    and last tail lines of the output (blank lines, caret markers and frames of the
    import machinery left out, each line cut to width characters), and how many lines
    the excerpt leaves out besides those.
    """
    masked = mask_secrets(text, secrets, min_length)
    lines = [line.rstrip() for line in masked.splitlines()
             if line.strip() and not NOISE_RE.match(line)]
    head, tail, width = int(head), int(tail), int(width)
    omitted = max(0, len(lines) - head - tail)
    shown = lines if not omitted else lines[:head] + [f"... ({omitted} lines)"] + lines[-tail:]
    return {
        "cause": _trim(_cause(lines), width) or "no output",
        "excerpt": "\n".join(_trim(line, width) for line in shown),
        "omitted": omitted,
    }


class FilterModule:
    def filters(self):
        return {
            "gantry_mask_secrets": mask_secrets,
            "gantry_failure_summary": failure_summary,
        }
