#!/usr/bin/env python3
"""Makes kubeconform-ready standalone schemas from kubernetes-validate's "local" ones, whose
$refs point at an absolute /api/_definitions.json: each kind's file gets the definitions it
reaches inlined under $defs. usage: k8s-standalone.py SRC_DIR OUT_DIR"""
import json
import os
import re
import sys

REF = re.compile(r'"\$ref": "(?:/api/_definitions\.json)?#/\$defs/([^"]+)"')


def main():
    src, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(src, "_definitions.json")) as f:
        defs = json.load(f)["$defs"]
    texts = {k: json.dumps(v) for k, v in defs.items()}
    os.makedirs(out, exist_ok=True)
    n = 0
    for name in sorted(os.listdir(src)):
        if not name.endswith(".json") or name.startswith("_") or name == "all.json":
            continue
        with open(os.path.join(src, name)) as f:
            text = f.read()
        seen, todo = set(), REF.findall(text)
        while todo:
            d = todo.pop()
            if d not in seen and d in texts:
                seen.add(d)
                todo += REF.findall(texts[d])
        schema = json.loads(REF.sub(r'"$ref": "#/$defs/\1"', text))
        schema.pop("$id", None)  # kubeconform would resolve the refs against the remote $id
        schema["$defs"] = {d: json.loads(REF.sub(r'"$ref": "#/$defs/\1"', texts[d])) for d in seen}
        with open(os.path.join(out, name), "w") as f:
            json.dump(schema, f, separators=(",", ":"))
        n += 1
    print(f"k8s-standalone: {n} schemas in {out}")


if __name__ == "__main__":
    main()
