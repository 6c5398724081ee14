"""A Python plugin that misbehaves on request (param `do`), to show the
host bounds Python plugins exactly as it bounds Rust ones.

- `loop`: never returns.
- `bomb`: allocates without end.
- `remove`: proposes removing `path` (an entry it stats), granted or not.
"""

import remedy_sdk
from remedy_sdk import Param, Plan, Plugin
from wit_world.imports import fs


class Hostile(Plugin):
    name = "hostile-py"
    description = "Misbehaves on request, for remedy's tests."
    params = [
        Param("do", "loop, bomb or remove.", "remove"),
        Param("path", "What `remove` proposes to remove.", ""),
    ]
    action_kinds = ["remove-path"]

    def plan(self, incident):
        what = incident.param("do")
        if what == "loop":
            while True:
                pass
        if what == "bomb":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        path = incident.param("path")
        return Plan(f"remove {path}").remove(fs.stat(path), "asked to")


WitWorld = remedy_sdk.export(Hostile)
