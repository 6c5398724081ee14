"""old-logs: remove rotated logs past their age, written in Python.

In each directory of `dirs`, rotated logs (`app.log.1`, `app.log.2.gz`,
`syslog.old`: names matching `pattern`) last written more than `max_age`
ago are proposed for removal, oldest first. A file some process holds open
or mapped is left alone, and so is anything with other hard links (removing
it would free nothing). Without `proc` to tell which files are in use, it
escalates instead of guessing. After the removals it reports what they freed.

Build: componentize-py -d WIT -w plugin componentize -p . -p SDK app -o old-logs.wasm
"""

import re
import time

import remedy_sdk
from remedy_sdk import Param, Plan, Plugin, PluginError, format_bytes
from wit_world.imports import fs, grants, proc

ROTATED = r"\.(\d+|gz|old|bak)$"


class OldLogs(Plugin):
    name = "old-logs"
    version = "0.1.0"
    description = (
        "Removes rotated logs older than max_age from the given directories, "
        "oldest first, never a file in use."
    )
    params = [
        Param("dirs", "Comma-separated directories holding the logs.", ""),
        Param("max_age", "Rotated logs last written longer ago than this go (7d, 36h).", "7d"),
        Param("pattern", "A regular expression a rotated log's name matches.", ROTATED),
    ]
    action_kinds = ["remove-path"]

    def plan(self, incident):
        if incident.round > 0:
            return report(incident)
        dirs = incident.param_list("dirs")
        if not dirs:
            raise PluginError.invalid("parameter `dirs`: name at least one directory")
        max_age = incident.param_duration("max_age")
        try:
            rotated = re.compile(incident.param("pattern", ROTATED))
        except re.error as error:
            raise PluginError.invalid(f"parameter `pattern`: {error}")

        plan = Plan()
        found = []
        for directory in dirs:
            found.extend(old_logs(plan, directory, rotated, max_age))
        if not found:
            plan.summary = f"no rotated log older than {incident.param('max_age')}"
            return plan
        if not grants.readable("proc"):
            plan.summary = f"{len(found)} old rotated logs, not removed"
            return plan.escalate(
                "cannot tell which files are in use without proc = [\"read\"]"
            )
        held = files_in_use({entry.identity.device for entry in found})
        freed = 0
        for entry in sorted(found, key=lambda e: e.identity.mtime_ns):
            key = (entry.identity.device, entry.identity.inode)
            if key in held:
                plan.warn(entry.path, f"held open by pid {held[key]}")
                continue
            age_days = (time.time_ns() - entry.identity.mtime_ns) / 86400e9
            plan.remove(entry, f"rotated log, last written {age_days:.0f}d ago")
            freed += entry.allocated_bytes
        plan.summary = f"remove {len(plan.actions)} rotated logs, {format_bytes(freed)}"
        return plan


def old_logs(plan, directory, rotated, max_age):
    """The rotated logs in `directory` older than `max_age` seconds."""
    try:
        entries = fs.read_dir(directory)
    except Exception as error:
        plan.skip(directory, describe(error))
        return []
    oldest_kept = time.time_ns() - max_age * 1_000_000_000
    found = [
        entry
        for entry in entries
        if entry.kind == fs.FileKind.FILE
        and entry.links == 1
        and rotated.search(entry.path.rsplit("/", 1)[-1])
        and entry.identity.mtime_ns < oldest_kept
    ]
    plan.passed(directory, f"{len(found)} of {len(entries)} entries are old rotated logs")
    return found


def files_in_use(devices):
    """(device, inode) of every file some process holds, and the pid."""
    held = {}
    for device in devices:
        for file in proc.files_in_use(device).files:
            held[(file.device, file.inode)] = file.pid
    return held


def report(incident):
    done = [r for r in incident.history if r.status.name == "DONE"]
    plan = Plan(f"removed {len(done)} of {len(incident.history)} rotated logs")
    for result in incident.history:
        plan.check(result.action.value.path, "pass" if result in done else "warn", result.detail)
    return plan


def describe(error):
    """A host error as a line: its kind and message."""
    value = getattr(error, "value", error)
    kind = type(value).__name__.replace("Error_", "").lower()
    return f"{kind}: {getattr(value, 'value', value)}"


WitWorld = remedy_sdk.export(OldLogs)
