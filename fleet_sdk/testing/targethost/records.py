"""What a target's programs record: CALLS_LOG, and the awk and shell lines that append to it.

The shims (shims.py) and the fake systems' programs (fleet_sdk.testing.fakesystem) embed these
lines; FakeTarget.calls() reads the records back.
"""

from __future__ import annotations

import os

# The log every recording program of a target appends to: one JSON object a line with `program`,
# `boot`, `uid`, `time` and `argv`. Under /var, so it outlives the target's reboots.
CALLS_LOG = "/var/log/fleet-harness/calls.jsonl"

# awk (mawk or gawk) printing one JSON object: `key=text` fields are strings, `key:json` are put in
# as they are (numbers, booleans, arrays), then `--` and the argv. With `--array` first it prints
# just its other arguments as a JSON array. Characters are escaped one by one, as gsub's backslash
# handling differs between awks. No single quote inside: shell scripts embed it.
RECORD_AWK = r"""
function q(s,   r, i, c) {
  r = ""
  for (i = 1; i <= length(s); i++) {
    c = substr(s, i, 1)
    if (c == "\\") r = r "\\\\"
    else if (c == "\"") r = r "\\\""
    else if (c in esc) r = r esc[c]
    else r = r c
  }
  return "\"" r "\""
}
BEGIN {
  for (k = 1; k < 32; k++) esc[sprintf("%c", k)] = sprintf("\\u%04x", k)
  esc["\n"] = "\\n"; esc["\t"] = "\\t"; esc["\r"] = "\\r"
  if (ARGV[1] == "--array") {
    out = "["; sep = ""
    for (i = 2; i < ARGC; i++) { out = out sep q(ARGV[i]); sep = "," }
    print out "]"
    exit
  }
  out = "{"; sep = ""
  for (i = 1; i < ARGC; i++) {
    a = ARGV[i]
    if (a == "--") break
    p = match(a, /[=:]/)
    v = substr(a, p + 1)
    out = out sep q(substr(a, 1, p - 1)) ":" (substr(a, p, 1) == "=" ? q(v) : v)
    sep = ","
  }
  if (i < ARGC) {
    out = out sep "\"argv\":["; sep = ""
    for (i++; i < ARGC; i++) { out = out sep q(ARGV[i]); sep = "," }
    out = out "]"
  }
  print out "}"
}
"""


# Shell: defines $record_awk, which record_command and json_array_command run.
RECORD_AWK_VARIABLE = f"record_awk='{RECORD_AWK}'\n"


def record_command(fields: str, argv: str | None = '"$@"') -> str:
    """A shell line appending a record of `fields` (RECORD_AWK's arguments, already quoted) and
    `argv` (none: a field gives it) to CALLS_LOG; flock keeps concurrent writers' lines whole."""
    log = CALLS_LOG
    return (
        f'mkdir -p {os.path.dirname(log)} && /usr/bin/flock {log} /usr/bin/awk "$record_awk" '
        f'{fields} "boot:$(cat /run/fleet-harness/boot 2>/dev/null || echo null)" "uid:$(id -u)" '
        f'"time:$(date +%s.%N)"' + (f" -- {argv}" if argv else "") + f" >> {log}"
    )


def json_array_command(argv: str = '"$@"') -> str:
    """A shell command printing `argv` as a JSON array (for a `key:` field of record_command)."""
    return f'/usr/bin/awk "$record_awk" --array {argv}'
