"""Validate the Kubernetes manifests offline, as an API server would see them.

Every overlay under deploy/kubernetes/overlays is rendered by kustomize, alone and with
each component under deploy/kubernetes/components, and every object it yields is
validated:
- Kubernetes kinds against the Kubernetes OpenAPI schemas that the kubernetes-validate
  package bundles, in strict mode (an unknown field is an error, where an API server
  would drop it or refuse it), for every Kubernetes version in KUBERNETES_VERSIONS;
- custom resources (KEDA, Prometheus Operator) against the openAPIV3Schema of their
  CRDs pinned in deploy/schemas, made strict the same way.

Usage: python check.py KUBECTL
Prints one line per rendered object and ends with "N passed, N failed".
"""

import copy
import pathlib
import subprocess
import sys
import tempfile

import jsonschema
import kubernetes_validate
import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent
KUSTOMIZE = DEPLOY / "kubernetes"
# The oldest minor release the manifests promise to work on, and the newest the
# validator knows: PodDisruptionBudget policy/v1 and the pod security fields used here
# are all older than the first.
KUBERNETES_VERSIONS = ["1.31.0", "1.34.0", "1.37.0"]


def strict(schema):
    """The schema with every object closed to fields it does not name, unless the CRD
    says it keeps unknown fields or has free-form values."""
    schema = copy.deepcopy(schema)

    def close(node):
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


def crd_schemas():
    """(apiVersion, kind) -> the strict schema of that version of a pinned CRD."""
    schemas = {}
    for path in sorted((DEPLOY / "schemas").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            schemas[(f"{group}/{version['name']}", kind)] = (schema, path.name)
    return schemas


def render(kubectl, overlay, component=None):
    """The objects kustomize makes of an overlay, with a component added if given."""
    if component is None:
        out = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True)
    else:
        # kustomize takes only relative paths inside the tree, so the combination is a
        # temporary kustomization beside the overlays.
        with tempfile.TemporaryDirectory(dir=KUSTOMIZE) as tmp:
            (pathlib.Path(tmp) / "kustomization.yaml").write_text(
                yaml.safe_dump(
                    {
                        "apiVersion": "kustomize.config.k8s.io/v1beta1",
                        "kind": "Kustomization",
                        "resources": [f"../overlays/{overlay.name}"],
                        "components": [f"../components/{component.name}"],
                    }
                )
            )
            out = subprocess.run([kubectl, "kustomize", tmp], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def validate(obj, crds):
    """The errors in one object: empty when it is valid."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in crds:
        schema, source = crds[key]
        validator = jsonschema.Draft7Validator(schema)
        errors = [
            f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message} (schema {source})"
            for e in validator.iter_errors(obj)
        ]
        # A CRD leaves `metadata` to the API server, which holds it to ObjectMeta: the
        # same check as for a ConfigMap's.
        meta = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata")}
        return errors + [e for e in validate(meta, crds)]
    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(map(str, e.path)) or "(root)"
            errors.append(f"Kubernetes {version}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(
                f"no schema for {key[0]} {key[1]}: neither a Kubernetes kind nor a pinned CRD"
            )
            break
    return errors


def broken(objects):
    """Copies of the objects, each with one mistake that the validation must report: a
    misspelt field and a value of the wrong type."""
    for obj in objects:
        typo = copy.deepcopy(obj)
        typo["spec"]["replicaz" if obj["kind"] == "Deployment" else "selectr"] = 1
        wrong_type = copy.deepcopy(obj)
        wrong_type["metadata"]["name"] = 7
        yield typo
        yield wrong_type


def main(kubectl):
    crds = crd_schemas()
    overlays = sorted(p for p in (KUSTOMIZE / "overlays").iterdir() if p.is_dir())
    components = sorted(p for p in (KUSTOMIZE / "components").iterdir() if p.is_dir())
    builds = [(o, None) for o in overlays] + [(o, c) for o in overlays for c in components]
    passed = failed = 0
    for overlay, component in builds:
        name = overlay.name + (f" + {component.name}" if component else "")
        try:
            objects = render(kubectl, overlay, component)
        except RuntimeError as e:
            print(f"FAIL {name}: kustomize: {e}")
            failed += 1
            continue
        kinds = {o["kind"] for o in objects}
        missing = {"Deployment", "ConfigMap", "ScaledObject", "TriggerAuthentication"} - kinds
        if component:
            missing |= {"ServiceMonitor"} - kinds
        if missing:
            print(f"FAIL {name}: renders no {', '.join(sorted(missing))}")
            failed += 1
        for obj in objects:
            what = f"{name}: {obj['kind']} {obj['metadata']['name']}"
            errors = validate(obj, crds)
            if errors:
                failed += 1
                print(f"FAIL {what}")
                for e in errors:
                    print(f"    {e}")
            else:
                passed += 1
                print(f"ok   {what}")
        # The validation must be able to fail: a broken copy of each kind must not pass.
        for obj in broken(o for o in objects if "spec" in o and o["kind"] != "ConfigMap"):
            if not validate(obj, crds):
                failed += 1
                print(f"FAIL {name}: a broken {obj['kind']} passed the validation")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
