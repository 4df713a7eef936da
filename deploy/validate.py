"""Render the Helm chart with every values file in deploy/values/ and the kustomize
trees in k8s/, and validate every object offline.

For each values file: values.schema.json (as `helm install` would), `helm lint --strict`
for the oldest supported Kubernetes, a render, and a strict schema check of every
rendered object against Kubernetes 1.29 and 1.37 (CRDs against deploy/schemas/).
For each kustomization: `kubectl kustomize` and the same schema check.

Writes the rendered manifests to $BS_DEPLOY_OUT (default /var/tmp/bs-deploy-out) and
prints one line per input; exits 1 on any error.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render  # noqa: E402

OUT = Path(os.environ.get("BS_DEPLOY_OUT", "/var/tmp/bs-deploy-out"))


def check_objects(label: str, objects: list[dict], errors: list[str]) -> None:
    seen = set()
    for obj in objects:
        key = (obj.get("kind"), obj["metadata"].get("namespace"), obj["metadata"].get("name"))
        if key in seen:
            errors.append(f"{label}: duplicate object {render.describe(obj)}")
        seen.add(key)
        for version in render.KUBE_VERSIONS:
            try:
                problems = render.validate_object(obj, version)
            except render.SchemaMissing as missing:
                errors.append(f"{label}: {render.describe(obj)}: {missing}")
                break
            errors.extend(f"{label}: {render.describe(obj)} (k8s {version}): {p}" for p in problems)
            if "monitoring.coreos.com" in obj.get("apiVersion", ""):
                break  # CRD schema is version independent


def summary(objects: list[dict]) -> str:
    counts = Counter(o["kind"] for o in objects)
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def dump(name: str, objects: list[dict]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))


def main() -> int:
    errors: list[str] = []
    lines: list[str] = []
    total = 0
    helm_error = render.helm_error_type()

    for path in render.values_files():
        label = f"helm {path.name}"
        values = render.load_yaml(path)
        try:
            render.validate_values(values)
        except helm_error as err:
            errors.append(f"{label}: values.schema.json: {err}")
            continue
        report = render.lint(values)
        for message in report.get("messages", []):
            if message.get("severity", 0) >= 2:  # warnings are errors (--strict)
                errors.append(f"{label}: helm lint: {message.get('path')}: {message.get('error')}")
        errors.extend(f"{label}: helm lint: {e}" for e in report.get("errors", []))
        try:
            objects = render.render_chart(values)
        except helm_error as err:
            errors.append(f"{label}: render: {err}")
            continue
        before = len(errors)
        check_objects(label, objects, errors)
        dump(f"helm-{path.stem}", objects)
        total += len(objects)
        status = "ok" if len(errors) == before else "FAILED"
        lines.append(f"{label:<34} {len(objects):>3} objects {status}: {summary(objects)}")

    for relative in render.KUSTOMIZATIONS:
        label = f"kustomize k8s/{relative}"
        try:
            objects = render.kustomize(relative)
        except RuntimeError as err:
            errors.append(f"{label}: {err}")
            continue
        before = len(errors)
        check_objects(label, objects, errors)
        dump("kustomize-" + relative.replace("/", "-"), objects)
        total += len(objects)
        status = "ok" if len(errors) == before else "FAILED"
        lines.append(f"{label:<34} {len(objects):>3} objects {status}: {summary(objects)}")

    versions = " and ".join(render.KUBE_VERSIONS)
    print(f"schema validation (strict, Kubernetes {versions}; rendered manifests in {OUT}):")
    for line in lines:
        print("  " + line)
    if errors:
        print(f"\n{len(errors)} problem(s):")
        for error in errors:
            print("  " + error)
        return 1
    print(f"  {total} objects valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
