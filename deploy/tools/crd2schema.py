#!/usr/bin/env python3
"""Turns CustomResourceDefinition YAML files into the strict JSON schemas kubeconform reads.

usage: crd2schema.py OUT_DIR CRD.yaml...
Writes OUT_DIR/<group>/<kind lowercased>_<version>.json for every served version (kubeconform's
{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}} layout). Strict: an object that lists its
properties rejects unknown ones unless the CRD says x-kubernetes-preserve-unknown-fields."""
import json
import os
import sys

import yaml

KEEP = ("description", "enum", "format", "pattern", "minimum", "maximum", "minLength",
        "maxLength", "minItems", "maxItems", "default", "required", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf", "uniqueItems", "minProperties", "maxProperties")


def convert(node):
    if not isinstance(node, dict):
        return node
    out = {k: node[k] for k in KEEP if k in node}
    if node.get("x-kubernetes-int-or-string"):
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
        return out
    t = node.get("type")
    if t:
        out["type"] = [t, "null"] if node.get("nullable") else t
    if "properties" in node:
        out["properties"] = {k: convert(v) for k, v in node["properties"].items()}
    if "items" in node:
        out["items"] = convert(node["items"])
    for comb in ("allOf", "anyOf", "oneOf"):
        if comb in node:
            out[comb] = [convert(x) for x in node[comb]]
    if "not" in node:
        out["not"] = convert(node["not"])
    ap = node.get("additionalProperties")
    if isinstance(ap, dict):
        out["additionalProperties"] = convert(ap)
    elif ap is not None:
        out["additionalProperties"] = ap
    elif "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def main():
    out_dir, files = sys.argv[1], sys.argv[2:]
    n = 0
    for f in files:
        with open(f) as fh:
            for doc in yaml.safe_load_all(fh):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                group, kind = spec["group"], spec["names"]["kind"].lower()
                for v in spec["versions"]:
                    schema = (v.get("schema") or {}).get("openAPIV3Schema")
                    if not schema or not v.get("served", True):
                        continue
                    js = convert(schema)
                    # metadata is the standard ObjectMeta: checked by the API server, not here
                    js.setdefault("properties", {})["metadata"] = {"type": "object"}
                    js["$schema"] = "http://json-schema.org/draft-07/schema#"
                    d = os.path.join(out_dir, group)
                    os.makedirs(d, exist_ok=True)
                    with open(os.path.join(d, f"{kind}_{v['name']}.json"), "w") as o:
                        json.dump(js, o, indent=1, sort_keys=True)
                    n += 1
    print(f"crd2schema: {n} schemas in {out_dir}")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
