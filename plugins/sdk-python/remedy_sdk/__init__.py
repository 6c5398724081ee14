"""remedy's Python SDK: a remedy plugin as a Python class.

Subclass `Plugin`, say who the plugin is and what it takes, and answer each
incident with a `Plan` of checks and proposed actions; then, in the module
componentize-py builds (`app.py`), export it:

    WitWorld = remedy_sdk.export(MyPlugin)

The plugin sees the world only through the host's read interfaces
(`from wit_world.imports import fs, proc, ...`), within the operator's
grants, and changes nothing itself: the host checks each proposed action
against the grants and the object's identity, records it, and only then
acts. The same ergonomics as the Rust SDK (`remedy-sdk`).
"""

import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import log as _log
from wit_world.imports import types

__all__ = [
    "Plugin",
    "Param",
    "Incident",
    "Plan",
    "PluginError",
    "export",
    "parse_duration",
    "format_bytes",
    "log",
]


class Param:
    """A parameter the plugin takes: its name, what it means, its default."""

    def __init__(self, name, description, default=None):
        self.name = name
        self.description = description
        self.default = default

    def _wit(self):
        return types.ParamInfo(
            name=self.name, description=self.description, default=self.default
        )


class PluginError(Exception):
    """An error the plugin answers with instead of a plan.

    `kind` is one of `invalid` (a parameter or alert it cannot work with),
    `unavailable`, `not-found`, `denied` or `internal`.
    """

    _KINDS = {
        "invalid": types.Error_Invalid,
        "unavailable": types.Error_Unavailable,
        "not-found": types.Error_NotFound,
        "denied": types.Error_Denied,
        "internal": types.Error_Internal,
    }

    def __init__(self, kind, message):
        if kind not in self._KINDS:
            raise ValueError(f"unknown error kind {kind!r}")
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    @classmethod
    def invalid(cls, message):
        return cls("invalid", message)

    def _wit(self):
        return self._KINDS[self.kind](self.message)


class Incident:
    """What the plugin is asked to plan for: the alert, the parameters, and
    what earlier rounds did."""

    def __init__(self, raw):
        self.raw = raw
        self.params = dict(raw.params)
        self.labels = dict(raw.alert.labels)
        self.annotations = dict(raw.alert.annotations)

    @property
    def dry_run(self):
        return self.raw.dry_run

    @property
    def round(self):
        return self.raw.round

    @property
    def memo(self):
        return self.raw.memo

    @property
    def history(self):
        """Every action the host executed (or refused) in earlier rounds."""
        return self.raw.history

    def param(self, name, default=None):
        value = self.params.get(name)
        return default if value is None or value == "" else value

    def label(self, name, default=None):
        return self.labels.get(name, default)

    def param_list(self, name):
        """A comma-separated parameter as a list, blanks left out."""
        return [item.strip() for item in (self.param(name) or "").split(",") if item.strip()]

    def param_int(self, name):
        text = self.param(name)
        try:
            return int(text)
        except (TypeError, ValueError):
            raise PluginError.invalid(f"parameter `{name}` = {text!r}: expected a whole number")

    def param_duration(self, name):
        """A duration parameter (`30s`, `15m`, `2h`, `7d`, `1h30m`) in seconds."""
        text = self.param(name)
        try:
            return parse_duration(text)
        except ValueError as error:
            raise PluginError.invalid(f"parameter `{name}`: {error}")


class Plan:
    """A plan being built: checks made, actions proposed, and what next."""

    def __init__(self, summary=""):
        self.summary = summary
        self.checks = []
        self.actions = []
        self.escalation = None
        self.recheck = None
        self.memo_text = None

    def check(self, name, status, detail=""):
        """Record an observation; `status` is `pass`, `warn`, `fail` or `skip`."""
        statuses = {
            "pass": types.CheckStatus.PASS,
            "warn": types.CheckStatus.WARN,
            "fail": types.CheckStatus.FAIL,
            "skip": types.CheckStatus.SKIPPED,
        }
        if status not in statuses:
            raise ValueError(f"check status {status!r}: expected one of {', '.join(statuses)}")
        self.checks.append(types.Check(name=name, status=statuses[status], detail=detail))
        return self

    def passed(self, name, detail=""):
        return self.check(name, "pass", detail)

    def warn(self, name, detail=""):
        return self.check(name, "warn", detail)

    def fail(self, name, detail=""):
        return self.check(name, "fail", detail)

    def skip(self, name, detail=""):
        return self.check(name, "skip", detail)

    def remove(self, entry, reason):
        """Propose removing the file `entry` (from `fs.stat` or `fs.read_dir`),
        as it was when read: the host refuses it if it changed since."""
        action = types.RemovePath(path=entry.path, identity=entry.identity, reason=reason)
        self.actions.append(types.Action_RemovePath(action))
        return self

    def propose(self, action):
        """Propose any action of the contract, already built."""
        self.actions.append(action)
        return self

    def escalate(self, why):
        """Page a human instead: none of this plan's actions run."""
        self.escalation = why
        return self

    def recheck_after(self, seconds):
        """Ask to be called again after `seconds`, to confirm or go on."""
        self.recheck = int(seconds)
        return self

    def memo(self, text):
        """State handed to the next round's incident."""
        self.memo_text = text
        return self

    def _wit(self):
        return types.Plan(
            summary=self.summary,
            checks=self.checks,
            actions=self.actions,
            escalate=self.escalation,
            recheck_after_secs=self.recheck,
            memo=self.memo_text,
        )


class Plugin:
    """A remedy plugin. Set the class attributes and implement `plan`."""

    name = ""
    version = "0.1.0"
    description = ""
    #: The parameters it takes, as `Param`s.
    params = []
    #: The kinds of action it may propose (`remove-path`, ...).
    action_kinds = []

    def plan(self, incident):
        """Look through the host's interfaces, then answer with a `Plan`."""
        raise NotImplementedError


def export(plugin_class):
    """The `WitWorld` class componentize-py exports, running `plugin_class`."""
    plugin = plugin_class()

    class WitWorld(wit_world.WitWorld):
        def describe(self):
            return types.PluginInfo(
                name=plugin.name,
                version=plugin.version,
                description=plugin.description,
                params=[param._wit() for param in plugin.params],
                action_kinds=list(plugin.action_kinds),
            )

        def plan(self, incident):
            try:
                return plugin.plan(Incident(incident))._wit()
            except PluginError as error:
                raise Err(error._wit())

    return WitWorld


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)\s*([smhdw])")


def parse_duration(text):
    """`30s`, `15m`, `2h`, `7d`, `1w` or a sum like `1h30m`, in seconds."""
    compact = (text or "").replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 2h, 7d or 1h30m")
    return sum(int(number) * _UNITS[unit] for number, unit in parts)


def format_bytes(count):
    """A byte count as people read it: `512 B`, `1.5 KiB`, `3.0 GiB`."""
    value, unit = float(count), 0
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and unit + 1 < len(units):
        value /= 1024
        unit += 1
    return f"{count} B" if unit == 0 else f"{value:.1f} {units[unit]}"


def log(level, message):
    """A line in the run's log: `debug`, `info`, `warn` or `error`."""
    levels = {
        "debug": _log.Level.DEBUG,
        "info": _log.Level.INFO,
        "warn": _log.Level.WARN,
        "error": _log.Level.ERROR,
    }
    _log.log(levels[level], message)
