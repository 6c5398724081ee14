"""{{ p.name }}: a remedy plugin. It reads how full the filesystem holding
`path` is, and warns above `warn_above` percent.

A plugin looks through the host's read interfaces (`wit_world.imports.fs`,
`proc`, `nomad`, `docker`, `http`, `prometheus`, ...), within the grants in
`remedy.toml`, and answers with a plan: checks, and actions for remedy to
check and carry out. It changes nothing itself.
"""

import remedy_sdk
from remedy_sdk import Param, Plan, Plugin, PluginError
from wit_world.imports import fs


class {{ p.type_name }}(Plugin):
    name = "{{ p.name }}"
    version = "0.1.0"
    description = "Reads how full a filesystem is and warns above a threshold."
    params = [
        Param("path", "A path on the filesystem to read.", "/tmp"),
        Param("warn_above", "Percent used above which it warns.", "90"),
    ]

    def plan(self, incident):
        path = incident.param("path", "/tmp")
        try:
            warn_above = float(incident.param("warn_above", "90"))
        except ValueError:
            raise PluginError.invalid("parameter `warn_above`: expected a number between 0 and 100")
        usage = fs.usage(path)
        used = usage.used_bytes * 100.0 / max(usage.used_bytes + usage.available_bytes, 1)
        plan = Plan(f"{path} is {used:.0f} % used")
        detail = f"{used:.0f} % used, warn above {warn_above:.0f} %"
        if used > warn_above:
            return plan.warn("usage", detail)
        return plan.passed("usage", detail)


WitWorld = remedy_sdk.export({{ p.type_name }})
