"""Generate the values table of helm/branchscore/README.md from values.yaml.

Every key preceded by a `# -- description` comment becomes a row (key path, type,
default, description), in file order. The table sits between the markers
<!-- values-table:start --> and <!-- values-table:end --> of the README.

    python deploy/values_table.py           # print the table
    python deploy/values_table.py --write   # rewrite the README section
    python deploy/values_table.py --check   # exit 1 when the README is stale
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
VALUES = ROOT / "helm" / "branchscore" / "values.yaml"
README = ROOT / "helm" / "branchscore" / "README.md"
START, END = "<!-- values-table:start -->", "<!-- values-table:end -->"

KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")
DOC = re.compile(r"^\s*# -- (?P<text>.*)$")


def documented_keys(text: str) -> list[tuple[list[str], str]]:
    rows: list[tuple[list[str], str]] = []
    stack: list[tuple[int, str]] = []
    pending: str | None = None
    for line in text.splitlines():
        doc = DOC.match(line)
        if doc:
            pending = doc.group("text").strip()
            continue
        match = KEY.match(line)
        if not match:
            continue
        indent = len(match.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group("key")))
        if pending is not None:
            rows.append(([k for _, k in stack], pending))
            pending = None
    return rows


def lookup(values: dict, path: list[str]):
    node = values
    for key in path:
        node = node[key]
    return node


def type_name(value) -> str:
    if value is None:
        return "int/null"
    return {bool: "bool", int: "int", float: "number", str: "string", list: "list", dict: "object"}[type(value)]


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table() -> str:
    text = VALUES.read_text()
    values = yaml.safe_load(text)
    intro = (
        "Every block under `services` has the keys documented for `services.gateway`; "
        "their defaults differ per service:\n\n" + services_table(values) + "\nAll keys:\n\n"
    )
    lines = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for path, description in documented_keys(text):
        value = lookup(values, path)
        default = json.dumps(value, separators=(", ", ": "))
        lines.append(f"| `{'.'.join(path)}` | {type_name(value)} | `{cell(default)}` | {cell(description)} |")
    return intro + "\n".join(lines) + "\n"


def services_table(values: dict) -> str:
    lines = [
        "| Service | `enabled` | `port` | `replicas` | `database.enabled` | `peers` | CPU request | memory limit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, svc in values["services"].items():
        peers = ", ".join(svc.get("peers") or []) or "none"
        resources = svc.get("resources") or {}
        cpu = (resources.get("requests") or {}).get("cpu", "")
        memory = (resources.get("limits") or {}).get("memory", "")
        lines.append(
            f"| {name} | {str(svc['enabled']).lower()} | {svc['port']} | {svc['replicas']} | "
            f"{str(svc['database']['enabled']).lower()} | {peers} | {cpu} | {memory} |"
        )
    return "\n".join(lines) + "\n"


def updated_readme(readme: str) -> str:
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{render_table()}{END}{tail}"


def main(argv: list[str]) -> int:
    if "--write" in argv:
        README.write_text(updated_readme(README.read_text()))
        return 0
    if "--check" in argv:
        current = README.read_text()
        if updated_readme(current) != current:
            print("helm/branchscore/README.md values table is stale: run deploy/values_table.py --write", file=sys.stderr)
            return 1
        print(f"chart README values table up to date ({len(documented_keys(VALUES.read_text()))} keys)")
        return 0
    sys.stdout.write(render_table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
