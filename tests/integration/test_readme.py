"""The README's worked examples of eventshop-history (issue 11: "the README's worked example runs
as written"): every ```sh block of its "## History" section, taken from README.md itself, runs
against the test stack with only the stack's location substituted (`.state/dev` is this stack's
$ES_STATE, `build/` its $ES_BUILD, /tmp/history a scratch directory), exits 0, and shows what the
text around it says it shows."""
import os
import re
import subprocess
import uuid

import requests

from conftest import mint_token, wait_for

TOP = os.path.join(os.path.dirname(__file__), "..", "..")
WAIT = {"Prefer": "wait=15"}


def history_blocks():
    with open(os.path.join(TOP, "README.md")) as f:
        text = f.read()
    section = re.search(r"^## History\n(.*?)^## ", text, re.S | re.M)
    assert section, "README.md has no '## History' section"
    blocks = re.findall(r"^```sh\n(.*?)^```", section.group(1), re.S | re.M)
    assert len(blocks) == 3, f"expected the export, as-of and projections examples, got {len(blocks)}"
    return blocks


def run(block, scratch):
    script = (block.replace(". .state/dev/env", '. "$ES_STATE/env"')
              .replace("build/history/", '"$ES_BUILD"/history/')
              .replace("/tmp/history", scratch))
    assert script != block, "the README's block no longer names the stack the test substitutes"
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=TOP, env=os.environ,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"README block failed ({out.returncode}):\n{script}\n{out.stderr}"
    return out.stdout


def projection(api_url, name):
    admin = {"Authorization": f"Bearer {mint_token('admin', 'readme-suite')}"}
    r = requests.get(f"{api_url}/v1/admin/projections", headers=admin, timeout=30)
    assert r.status_code == 200, r.text
    return next((p for p in r.json()["projections"] if p["name"] == name), None)


def test_readme_history_examples_run_as_written(api_url, tmp_path):
    vendor = f"v-{uuid.uuid4().hex[:8]}"
    sku = f"README-{uuid.uuid4().hex[:8]}"
    auth = {"Authorization": f"Bearer {mint_token('vendor', vendor, vendor)}", **WAIT}
    r = requests.post(f"{api_url}/v1/products", headers=auth, timeout=30,
                      json={"sku": sku, "name": "Readme lamp", "category": "k", "currency": "EUR"})
    assert r.status_code == 201, r.text
    export, asof, ops = history_blocks()

    # export, then fastavro lists every record: the product just listed among them
    out = run(export, str(tmp_path / "history"))
    assert '"manifest"' not in out and '"topics"' in out, out[:2000]
    assert any(line.split()[-1] == sku and "eventshop.catalog.ProductListed" in line
               for line in out.splitlines()), out[-2000:]

    # as-of ten minutes ago: asof_run names the instant, and the database is dropped after
    out = run(asof, str(tmp_path / "unused"))
    assert "as_of" in out and "finished_at" in out, out

    # the operator's list, pause, resume and a rebuild that swaps itself in when equal
    before = projection(api_url, "catalog_products")
    assert before, "catalog_products is not listed"
    out = run(ops, str(tmp_path / "unused"))
    assert "catalog_products" in out and "dead" in out.lower(), out

    def swapped():
        p = projection(api_url, "catalog_products") or {}
        # degraded: running, with dead letters other suites' malformed events left
        return (p.get("state") in ("running", "degraded")
                and "swapped in (asked by alice)" in str(p.get("detail") or ""))
    wait_for(swapped, timeout=120, what="the README's rebuild swapped in, catalog_products live")
