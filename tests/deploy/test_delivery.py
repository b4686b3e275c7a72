#!/usr/bin/env python3
"""Delivery (issue 9, item 5): what .github/workflows/ci.yml must do, read statically (GitHub is
not reachable from here), and scripts/smoke.sh run against a stand-in of the API.

- the job running `make test` (which builds the image and runs docker-compose end to end with a
  dockerd of its own) can run dockerd: on the runner itself, or in a container that is
  --privileged, in the host's cgroup namespace (cgroup v2) and has /var/lib/docker on a volume
  (overlay2 cannot stack on the container's overlayfs root);
- pull requests run that job: the workflow triggers on pull_request without path filters, the
  job and the jobs it needs have no `if:`, nothing in it may fail without failing the run;
- every job that pushes an image first builds it, then, before the push, fails on a pending
  Debian security update (apt-get -s as root in the built image; the grep pattern is tried on
  real `Inst` lines), makes an SPDX JSON SBOM with syft installed at a pinned version from its Go
  module (uploaded as an artifact), and scans the image with a scanner that fails on fixable
  HIGH/CRITICAL findings (grype from its Go module, or trivy-action);
- every job that deploys (kubectl apply) runs on tags only, needs those image jobs, runs
  scripts/smoke.sh after the rollout with its credentials as secrets through env, then a
  `kubectl rollout undo` step conditioned on failure() of the rollout or the smoke step;
- every `uses:` of every workflow is pinned to a version tag or a commit sha; no run: script
  expands a secret inline (they go through env);
- scripts/smoke.sh is executable, passes `bash -n` and shellcheck (when installed), never turns
  on xtrace;
- scripts/smoke.sh against a stand-in API that checks every request body and role against
  api/openapi.yaml: passes the whole flow (with a 202 to follow) and tidies up; fails with a
  clear message on a declined order, a wrong admin password and an order stuck past
  SMOKE_TIMEOUT; never prints a password or a token.

usage: .cache/deploy-venv/bin/python tests/deploy/test_delivery.py"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import yaml

from deploylib import check, summary, TOP, read

WORKFLOW = ".github/workflows/ci.yml"
SMOKE = "scripts/smoke.sh"
VERSION_TAG = r"v\d+(\.\d+){0,2}"
PINNED_USES = re.compile(rf"^[\w.-]+/[\w./-]+@({VERSION_TAG}|[0-9a-f]{{40}})$")
GO_PINNED = r"@v\d+\.\d+\.\d+\b"
# `apt-get -s` lines the pending-update check must and must not take for security updates
SECURITY_INST = ["Inst libssl3 [3.0.11-1~deb12u2] (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])",
                 "Inst libc6 [2.36-9+deb12u4] (2.36-9+deb12u7 Debian:12.6/stable, Debian-Security:12/stable-security [amd64])"]
OTHER_INST = ["Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u1 Debian:12.11/stable [all])",
              "Conf libssl3 (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])"]


# ---------------------------------------------------------------- reading the workflow
def workflow(path=WORKFLOW):
    return yaml.safe_load(read(path))


def triggers(wf):
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {t: None for t in on}
    return on or {}


def text(step):
    """what a step does, as one string: its run script, or its uses and with"""
    if "run" in step:
        return str(step["run"])
    return f"uses {step.get('uses', '')} " + json.dumps(step.get("with") or {}, sort_keys=True)


def step_name(step):
    return step.get("name") or step.get("id") or step.get("uses") or str(step.get("run", ""))[:40]


def find(steps, pred):
    """indexes of the steps for which pred(step, text) holds"""
    return [i for i, s in enumerate(steps) if pred(s, text(s))]


def needs_of(job):
    n = job.get("needs") or []
    return [n] if isinstance(n, str) else list(n)


def all_needs(jobs, name, seen=None):
    seen = set() if seen is None else seen
    for n in needs_of(jobs.get(name, {})):
        if n not in seen:
            seen.add(n)
            all_needs(jobs, n, seen)
    return seen


def test_jobs(wf):
    return [n for n, j in wf["jobs"].items() if find(j.get("steps", []), lambda s, t: re.search(r"\bmake test\b", t))]


def is_build(s, t):
    return bool(re.search(r"\bdocker (buildx )?build\b", t)) or "docker/build-push-action" in s.get("uses", "")


def is_push(s, t):
    if "docker/build-push-action" in s.get("uses", ""):
        return str((s.get("with") or {}).get("push", "false")).lower() not in ("false", "")
    return bool(re.search(r"\bdocker (image )?push\b", t))


def image_jobs(wf):
    return [n for n, j in wf["jobs"].items() if find(j.get("steps", []), is_push)]


def deploy_jobs(wf):
    return [n for n, j in wf["jobs"].items() if find(j.get("steps", []), lambda s, t: "kubectl apply" in t)]


# ---------------------------------------------------------------- the checks
def dockerd_in_test_job(wf):
    bad, names = [], test_jobs(wf)
    if not names:
        return ["no job runs `make test`"]
    for n in names:
        c = wf["jobs"][n].get("container")
        if c is None:
            continue  # on the runner, whose own dockerd runs
        if isinstance(c, str):
            c = {"image": c}
        opts = str(c.get("options") or "")
        vols = [str(v) for v in c.get("volumes") or []]
        if not re.search(r"(^|\s)--privileged\b", opts):
            bad.append(f"job {n}: container {c.get('image')} is not --privileged (dockerd cannot mount, make namespaces or cgroups)")
        if not re.search(r"--cgroupns[= ]host\b", opts):
            bad.append(f"job {n}: container not in the host's cgroup namespace (--cgroupns=host): on cgroup v2 runc cannot start containers from the namespace's root cgroup")
        vol = any(v.split(":")[-1].rstrip("/") == "/var/lib/docker" or v.rstrip("/") == "/var/lib/docker" for v in vols) \
            or re.search(r"(-v|--volume)[= ](\S+:)?/var/lib/docker/?(\s|$)", opts)
        if not vol:
            bad.append(f"job {n}: /var/lib/docker is not on a volume (overlay2 cannot stack on the container's overlayfs root: vfs would copy every layer)")
    return bad


def prs_run_compose_test(wf):
    bad = []
    on = triggers(wf)
    if "pull_request" not in on:
        bad.append("the workflow does not run on pull_request")
    else:
        pr = on["pull_request"] or {}
        for k in ("paths", "paths-ignore"):
            if k in pr:
                bad.append(f"pull_request has a `{k}` filter: a change outside it skips the compose test")
        if "types" in pr and not {"opened", "synchronize"} <= set(pr["types"]):
            bad.append(f"pull_request types {pr['types']} leave out opened or synchronize")
    jobs = wf["jobs"]
    names = test_jobs(wf)
    if not names:
        bad.append("no job runs `make test` (which runs the compose test)")
    for n in names:
        for j in [n] + sorted(all_needs(jobs, n)):
            if "if" in jobs[j]:
                bad.append(f"job {j} (run by or before {n}) has `if: {jobs[j]['if']}`: it may skip pull requests")
            if jobs[j].get("continue-on-error"):
                bad.append(f"job {j}: continue-on-error")
        steps = jobs[n].get("steps", [])
        for i in find(steps, lambda s, t: re.search(r"\bmake test\b", t)):
            if "if" in steps[i] or steps[i].get("continue-on-error"):
                bad.append(f"job {n}: the `make test` step is conditional or may fail without failing the job")
    if dockerd_in_test_job(wf):
        bad.append("the `make test` job cannot run dockerd (see that check)")
    with open(os.path.join(TOP, "scripts", "test.sh")) as f:
        if not re.search(r"^\s*scripts/compose\.sh test\b", f.read(), re.M):
            bad.append("scripts/test.sh (make test) does not run `scripts/compose.sh test`")
    return bad


def security_pattern_problems(t):
    """the step's grep -E pattern must take every SECURITY_INST line and none of OTHER_INST"""
    m = re.search(r"grep\s+(?:-\w*E\w*\s+)(?:'([^']+)'|\"([^\"]+)\")", t)
    if not m:
        return ["no `grep -E '<pattern>'` on the simulated upgrade"]
    pat = re.compile(m.group(1) or m.group(2))
    bad = [f"pattern {pat.pattern!r} misses {ln!r}" for ln in SECURITY_INST if not pat.search(ln)]
    bad += [f"pattern {pat.pattern!r} takes {ln!r}" for ln in OTHER_INST if pat.search(ln)]
    return bad


def image_checks(wf, which):
    """which: 'security', 'sbom' or 'scan': problems of that check in every image-pushing job"""
    bad, names = [], image_jobs(wf)
    if not names:
        return ["no job pushes an image"]
    for n in names:
        job = wf["jobs"][n]
        steps = job.get("steps", [])
        builds, pushes = find(steps, is_build), find(steps, is_push)
        first_push = min(pushes)
        if not builds or min(builds) > first_push:
            bad.append(f"job {n}: no build step before the push")
            continue
        if find(steps, lambda s, t: "docker/build-push-action" in s.get("uses", "") and is_push(s, t)):
            bad.append(f"job {n}: docker/build-push-action pushes as it builds, before any check")
        alltext = "\n".join(text(s) for s in steps)

        def before_push(idx, what):
            if not idx:
                bad.append(f"job {n}: no {what}")
                return None
            i = idx[0]
            if not (max(builds) < i < first_push):
                bad.append(f"job {n}: {what} ({step_name(steps[i])}) is not between the build and the push")
            if "if" in steps[i] or steps[i].get("continue-on-error"):
                bad.append(f"job {n}: {what} is conditional or may fail without failing the job")
            return steps[i]

        if which == "security":
            s = before_push(find(steps, lambda s, t: re.search(r"apt-get (-\w+ )*-s (dist-)?upgrade", t)),
                            "simulated apt-get upgrade in the built image")
            if s:
                t = text(s)
                if not re.search(r"docker run\b.*(--user[= ]0|--user[= ]root|-u 0)", t, re.S):
                    bad.append(f"job {n}: the upgrade simulation does not run the image as root (--user 0)")
                if "apt-get update" not in t:
                    bad.append(f"job {n}: no apt-get update before the simulation (it would see the image's stale lists)")
                if "exit 1" not in t:
                    bad.append(f"job {n}: the pending-update step never fails (no `exit 1`)")
                bad += [f"job {n}: {p}" for p in security_pattern_problems(t)]
        elif which == "sbom":
            if not re.search(r"go install github\.com/anchore/syft/cmd/syft" + GO_PINNED, alltext):
                bad.append(f"job {n}: syft not installed with `go install github.com/anchore/syft/cmd/syft@vX.Y.Z`")
            s = before_push(find(steps, lambda s, t: re.search(r"\bsyft\b.*spdx-json", t)), "syft SPDX JSON SBOM step")
            if s:
                m = re.search(r"spdx-json=(\S+)", text(s))
                if not m:
                    bad.append(f"job {n}: the SBOM is not written to a file (-o spdx-json=<file>)")
                elif not find(steps, lambda x, t: "actions/upload-artifact" in x.get("uses", "")
                              and m.group(1) in str((x.get("with") or {}).get("path", ""))):
                    bad.append(f"job {n}: the SBOM {m.group(1)} is not uploaded as an artifact")
        elif which == "scan":
            grype = find(steps, lambda s, t: re.search(r"^\s*grype\s", t, re.M))
            trivy = find(steps, lambda s, t: s.get("uses", "").startswith("aquasecurity/trivy-action@"))
            s = before_push(grype or trivy, "vulnerability scan (grype or trivy-action)")
            if s and grype:
                t = text(s)
                if not re.search(r"go install github\.com/anchore/grype/cmd/grype" + GO_PINNED, alltext):
                    bad.append(f"job {n}: grype not installed with `go install github.com/anchore/grype/cmd/grype@vX.Y.Z`")
                if not re.search(r"--fail-on[= ]high\b", t):
                    bad.append(f"job {n}: grype without --fail-on high (fails on HIGH and CRITICAL)")
                if "--only-fixed" not in t:
                    bad.append(f"job {n}: grype without --only-fixed (would fail on findings nobody can fix)")
            elif s:
                w = s.get("with") or {}
                if set(str(w.get("severity", "")).replace(" ", "").split(",")) != {"HIGH", "CRITICAL"}:
                    bad.append(f"job {n}: trivy severity is not HIGH,CRITICAL")
                if str(w.get("exit-code")) != "1" or str(w.get("ignore-unfixed")).lower() != "true":
                    bad.append(f"job {n}: trivy needs exit-code 1 and ignore-unfixed true")
    return bad


def deploy_after_checks(wf):
    bad, jobs = [], wf["jobs"]
    names, images = deploy_jobs(wf), image_jobs(wf)
    if not names:
        return ["no job deploys (kubectl apply)"]
    for n in names:
        job = jobs[n]
        if "refs/tags/" not in str(job.get("if", "")):
            bad.append(f"job {n}: deploys without `if:` restricting it to tags")
        missing = [i for i in images if i not in all_needs(jobs, n)]
        if not images or missing:
            bad.append(f"job {n}: does not need the checked image job(s) {missing or '(none pushes)'}")
        steps = job.get("steps", [])
        smoke = find(steps, lambda s, t: re.search(r"(^|[\s/])scripts/smoke\.sh\b", t))
        if not smoke:
            bad.append(f"job {n}: never runs scripts/smoke.sh")
            continue
        si = smoke[0]
        s = steps[si]
        # the rollout: the last step before the smoke test that applies or waits for one
        rollout = [i for i in find(steps, lambda s, t: "rollout status" in t or "kubectl apply" in t) if i < si]
        if not rollout or max(rollout) < max(find(steps, lambda s, t: "kubectl apply" in t)):
            bad.append(f"job {n}: the smoke test does not come after the rollout (kubectl apply, rollout status)")
            continue
        if "if" in s or s.get("continue-on-error"):
            bad.append(f"job {n}: the smoke test is conditional or may fail without failing the job")
        if not any("secrets." in str(v) for v in (s.get("env") or {}).values()):
            bad.append(f"job {n}: the smoke test gets no credential from secrets through env")
        ro = steps[max(rollout)]
        undo = [i for i in find(steps, lambda s, t: "rollout undo" in t) if i > si]
        if not undo:
            bad.append(f"job {n}: no `kubectl rollout undo` step after the smoke test")
            continue
        cond = str(steps[undo[0]].get("if", ""))
        if "failure()" not in cond:
            bad.append(f"job {n}: the rollback step is not conditioned on failure() (if: {cond!r})")
        for what, st in (("smoke", s), ("rollout", ro)):
            if not st.get("id") or f"steps.{st['id']}." not in cond:
                bad.append(f"job {n}: the rollback's `if` does not look at the {what} step's outcome "
                           "(give it an id): a failure before the rollout would undo the previous release")
    return bad


def pinned_uses():
    bad = []
    for f in sorted(glob.glob(os.path.join(TOP, ".github", "workflows", "*.y*ml"))):
        wf = yaml.safe_load(open(f))
        for jn, job in (wf.get("jobs") or {}).items():
            refs = [job["uses"]] if "uses" in job else []
            refs += [s["uses"] for s in job.get("steps", []) if "uses" in s]
            for u in refs:
                if u.startswith("./") or re.match(r"^docker://[^@]+@sha256:[0-9a-f]{64}$", u):
                    continue
                if not PINNED_USES.match(u):
                    bad.append(f"{os.path.basename(f)} job {jn}: `uses: {u}` is not pinned to a version tag or sha")
    return bad


def secrets_through_env(wf):
    bad = []
    for jn, job in wf["jobs"].items():
        for s in job.get("steps", []):
            if re.search(r"\$\{\{\s*secrets\.", str(s.get("run", ""))):
                bad.append(f"job {jn}, step {step_name(s)}: a secret expanded into the script (goes to env instead)")
    return bad


def smoke_static():
    path = os.path.join(TOP, SMOKE)
    if not os.path.exists(path):
        return [f"{SMOKE} missing"]
    bad = []
    if not os.access(path, os.X_OK):
        bad.append(f"{SMOKE} is not executable (the workflow runs it directly)")
    p = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
    if p.returncode:
        bad.append(f"bash -n: {p.stderr.strip()}")
    sc = shutil.which("shellcheck") or next(iter(glob.glob(os.path.join(TOP, ".cache", "*", "bin", "shellcheck"))), None)
    if sc:
        p = subprocess.run([sc, path], capture_output=True, text=True)
        if p.returncode:
            bad.append("shellcheck:\n" + p.stdout.strip())
    body = read(SMOKE)
    if re.search(r"^\s*set\s+(-\w*x|-o\s+xtrace)|^#!.*\s-\w*x", body, re.M):
        bad.append(f"{SMOKE} turns on xtrace: it would print tokens and passwords")
    return bad


# ---------------------------------------------------------------- a stand-in of the API
class Contract:
    """api/openapi.yaml: the operation of a request, its body validated against the schema"""

    def __init__(self):
        self.doc = yaml.safe_load(read("api/openapi.yaml"))
        self.ops = []
        for path, item in self.doc["paths"].items():
            rx = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
            for method, op in item.items():
                if method in ("get", "put", "post", "delete", "patch"):
                    self.ops.append((method.upper(), rx, path, op))

    def op(self, method, path):
        for m, rx, tmpl, op in self.ops:
            if m == method and rx.match(path):
                return tmpl, op
        return None, None

    def errors(self, pointer, value):
        v = jsonschema.Draft202012Validator({**self.doc, "$ref": pointer})
        return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}" for e in v.iter_errors(value)]

    def body_errors(self, method, tmpl, value):
        esc = tmpl.replace("~", "~0").replace("/", "~1")
        return self.errors(f"#/paths/{esc}/{method.lower()}/requestBody/content/application~1json/schema", value)

    def schema_errors(self, name, value):
        return self.errors(f"#/components/schemas/{name}", value)


class FakeApi:
    """Just enough of the API for the smoke flow, strict where the contract is: unknown routes,
    bodies the contract refuses and roles an operation does not admit are answered as the API
    would (404, 422, 401/403) and recorded in .problems. mode: ok, decline (the payment is
    declined), stuck (the order stays placed)."""
    ADMIN = ("admin@smoke.test", "the admin's own password")

    def __init__(self, contract, mode="ok"):
        self.contract, self.mode = contract, mode
        self.users = {"admin-1": {"email": self.ADMIN[0], "password": self.ADMIN[1], "role": "admin", "status": "active"}}
        self.tokens, self.products, self.orders, self.commands = {}, {}, {}, {}
        self.log, self.problems, self.secrets = [], [], [self.ADMIN[1]]
        self.position = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def outcome(self, **ids):
        self.position += 1
        o = {"command_id": str(uuid.uuid4()), "status": "accepted", "aggregate_version": 1,
             "position": f"0:{self.position}", **ids}
        self.check("CommandOutcome", o)
        return o

    def check(self, schema, value):  # the stand-in's own answers keep to the contract
        errs = self.contract.schema_errors(schema, value)
        if errs:
            raise AssertionError(f"stand-in answer is no {schema}: {errs}")

    def order_view(self, oid):
        o = self.orders[oid]
        o["polls"] += 1
        status, pay = "placed", "requested"
        if o["cancelled"]:
            status, pay = "cancelled", "refunded"
        elif self.mode == "decline" and o["polls"] > 1:
            status, pay = "cancelled", "declined"
        elif self.mode == "ok" and o["polls"] > 1:
            status, pay = "confirmed", "captured"
        view = {"order_id": oid, "customer_id": o["customer"], "status": status, "total_minor": 100, "currency": "EUR",
                "cancel_reason": "payment_declined" if status == "cancelled" and not o["cancelled"] else None,
                "refund_requested": 0, "tracking_number": None, "version": o["polls"], "placed_at": 1, "updated_at": 2,
                "lines": [{"sku": o["sku"], "vendor_id": o["vendor"], "quantity": 1, "unit_amount_minor": 100}],
                "timeline": [{"status": status, "detail": None, "at": 2}],
                "payment": {"status": pay, "amount_minor": 100, "currency": "EUR", "gateway_ref": "pi_1"},
                "shipment": None, "payment_status": pay, "shipment_status": None}
        self.check("Order", view)
        return view

    def handle(self, method, path, who, body):
        """(status, answer, headers) of a request already checked against the contract"""
        seg = path.strip("/").split("/")[1:]  # after v1
        u = lambda uid: {"user_id": uid, "role": self.users[uid]["role"], "status": self.users[uid]["status"],
                         "vendor_id": uid if self.users[uid]["role"] == "vendor" else None, "version": 1,
                         "email": self.users[uid]["email"], "name": "x", "phone": None}
        if (method, seg) == ("POST", ["auth", "token"]):
            for uid, x in self.users.items():
                if x["email"] == body["email"].lower() and x["password"] == body["password"] and x["status"] == "active":
                    tok = "tok-" + uuid.uuid4().hex + uuid.uuid4().hex
                    self.tokens[tok] = uid
                    self.secrets.append(tok)
                    return 200, {"access_token": tok, "token_type": "Bearer", "expires_in": 900}, {}
            return 401, {"type": "urn:eventshop:problem:unauthorized", "title": "Unauthorized", "status": 401,
                         "detail": "wrong e-mail or password"}, {}
        if (method, seg) == ("POST", ["users"]):
            uid = str(uuid.uuid4())
            self.users[uid] = {"email": body["email"].lower(), "password": body["password"], "role": body["role"],
                               "status": "pending" if body["role"] == "vendor" else "active"}
            self.secrets.append(body["password"])
            return 201, self.outcome(user_id=uid), {"Location": f"/v1/users/{uid}"}
        if method == "GET" and seg[0] == "users":
            return 200, u(seg[1]), {}
        if method == "POST" and seg[0] == "vendors":
            self.users[seg[1]]["status"] = "active"
            return 200, self.outcome(user_id=seg[1]), {}
        if method == "DELETE" and seg[0] == "users":
            self.users[seg[1]]["status"] = "forgotten"
            return 200, self.outcome(user_id=seg[1]), {}
        if (method, seg) == ("POST", ["products"]):
            self.products[body["sku"]] = {"vendor": who, "price": None, "stock": 0}
            return 201, self.outcome(sku=body["sku"]), {"Location": f"/v1/products/{body['sku']}"}
        if seg[0] in ("prices", "inventory", "products") and seg[1] not in self.products:
            return 404, {"type": "urn:eventshop:problem:unknown_sku", "title": "Not Found", "status": 404}, {}
        if seg[0] in ("prices", "inventory", "products") and self.products[seg[1]]["vendor"] != who:
            return 403, {"type": "urn:eventshop:problem:not_owner", "title": "Forbidden", "status": 403}, {}
        if method == "PUT" and seg[0] == "prices":
            self.products[seg[1]]["price"] = body["amount_minor"]
            return 200, self.outcome(sku=seg[1]), {}
        if method == "POST" and seg[0] == "inventory":
            self.products[seg[1]]["stock"] += body["quantity"]
            return 200, self.outcome(sku=seg[1]), {}
        if method == "DELETE" and seg[0] == "products":
            return 200, self.outcome(sku=seg[1]), {}
        if (method, seg) == ("POST", ["orders"]):
            sku = body["lines"][0]["sku"]
            p = self.products.get(sku)
            if not p or p["price"] is None or p["stock"] < 1:
                return 409, {"type": "urn:eventshop:problem:no_price", "title": "Conflict", "status": 409}, {}
            oid, cid = "ord-" + uuid.uuid4().hex, str(uuid.uuid4())
            self.orders[oid] = {"customer": who, "sku": sku, "vendor": p["vendor"], "polls": 0, "cancelled": False}
            self.commands[cid] = (who, self.outcome(order_id=oid))
            # not decided within the wait: the client follows the command
            return 202, {"command_id": cid, "status": "pending", "order_id": oid}, \
                {"Location": f"/v1/commands/{cid}", "Link": f'</v1/orders/{oid}>; rel="related"'}
        if method == "GET" and seg[0] == "commands":
            sender, out = self.commands.get(seg[1], (None, None))
            return (200, out, {}) if sender == who else (404, {"title": "Not Found", "status": 404}, {})
        if method == "GET" and seg[0] == "orders" and seg[1] in self.orders:
            if self.orders[seg[1]]["customer"] != who:
                return 404, {"title": "Not Found", "status": 404}, {}
            return 200, self.order_view(seg[1]), {}
        if method == "POST" and seg[0] == "orders" and seg[-1] == "cancel":
            self.orders[seg[1]]["cancelled"] = True
            return 200, self.outcome(order_id=seg[1]), {}
        return 404, {"title": "Not Found", "status": 404, "detail": f"stand-in: no {method} {path}"}, {}

    def _handler(self):
        api = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, status, body, headers):
                data = json.dumps(body).encode()
                self.send_response(status)
                ctype = "application/problem+json" if status >= 400 else "application/json"
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def serve(self):
                path = self.path.split("?")[0]
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                with api.lock:
                    api.log.append((self.command, path))
                    tmpl, op = api.contract.op(self.command, path)
                    if not op:
                        api.problems.append(f"{self.command} {path}: no such operation in api/openapi.yaml")
                        return self.answer(404, {"title": "Not Found", "status": 404}, {})
                    roles = op.get("x-roles", [])
                    auth = self.headers.get("Authorization", "")
                    who = api.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
                    if "public" not in roles:
                        if not who:
                            api.problems.append(f"{self.command} {path}: no valid bearer token")
                            return self.answer(401, {"title": "Unauthorized", "status": 401}, {})
                        if api.users[who]["role"] not in roles:
                            api.problems.append(f"{self.command} {path}: role {api.users[who]['role']} not in {roles}")
                            return self.answer(403, {"title": "Forbidden", "status": 403}, {})
                    body = None
                    if "requestBody" in op:
                        if not self.headers.get("Content-Type", "").startswith("application/json"):
                            api.problems.append(f"{self.command} {path}: Content-Type {self.headers.get('Content-Type')}")
                            return self.answer(415, {"title": "Unsupported Media Type", "status": 415}, {})
                        try:
                            body = json.loads(raw)
                        except ValueError:
                            api.problems.append(f"{self.command} {path}: body is not JSON")
                            return self.answer(400, {"title": "Bad Request", "status": 400}, {})
                        errs = api.contract.body_errors(self.command, tmpl, body)
                        if errs:
                            api.problems.append(f"{self.command} {path}: {errs}")
                            return self.answer(422, {"title": "Unprocessable Content", "status": 422,
                                                     "detail": "; ".join(errs)}, {})
                    elif raw:
                        api.problems.append(f"{self.command} {path}: a body the operation does not take")
                    try:
                        self.answer(*api.handle(self.command, path, who, body))
                    except Exception as e:  # a stand-in bug, or a request it cannot follow
                        api.problems.append(f"{self.command} {path}: stand-in failed: {e!r}")
                        self.answer(500, {"title": "stand-in error", "status": 500}, {})

            do_GET = do_POST = do_PUT = do_DELETE = serve

        return H


def run_smoke(api, password=None, timeout=60, **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("SMOKE_")}
    e.update(SMOKE_ADMIN_EMAIL=api.ADMIN[0], SMOKE_ADMIN_PASSWORD=password or api.ADMIN[1], SMOKE_POLL="0.1",
             SMOKE_TIMEOUT="20")
    e.update(env)
    try:
        p = subprocess.run([os.path.join(TOP, SMOKE), api.url], capture_output=True, text=True, env=e, timeout=timeout)
    except subprocess.TimeoutExpired as x:
        out = "".join(o.decode() if isinstance(o, bytes) else o for o in (x.stdout, x.stderr) if o)
        return None, f"(still running after {timeout} s)\n{out}"
    return p.returncode, p.stdout + p.stderr


def leaks(api, out):
    return [f"the output shows a {'token' if s.startswith('tok-') else 'password'} ({s[:6]}...)"
            for s in api.secrets if s and s in out]


FLOW = [("POST", r"/v1/auth/token"), ("POST", r"/v1/users"), ("GET", r"/v1/users/[^/]+"),
        ("POST", r"/v1/vendors/[^/]+/approval"), ("POST", r"/v1/auth/token"), ("POST", r"/v1/products"),
        ("PUT", r"/v1/prices/SMOKE-[^/]+"), ("POST", r"/v1/inventory/SMOKE-[^/]+/receipts"), ("POST", r"/v1/users"),
        ("POST", r"/v1/auth/token"), ("POST", r"/v1/orders"), ("GET", r"/v1/commands/[^/]+"), ("GET", r"/v1/orders/[^/]+"),
        ("POST", r"/v1/orders/[^/]+/cancel"), ("DELETE", r"/v1/products/SMOKE-[^/]+"), ("DELETE", r"/v1/users/[^/]+"),
        ("DELETE", r"/v1/users/[^/]+")]


def in_order(log, flow):
    """the flow's requests appear in the log in this order (others may come between)"""
    i = 0
    for m, p in log:
        if i < len(flow) and m == flow[i][0] and re.fullmatch(flow[i][1], p):
            i += 1
    return [] if i == len(flow) else [f"the flow stopped before {flow[i][0]} {flow[i][1]}; requests: "
                                      + ", ".join(f"{m} {p}" for m, p in log)]


def smoke_runs():
    if not os.path.exists(os.path.join(TOP, SMOKE)):
        return [f"{SMOKE} missing"]
    for tool in ("curl", "jq"):
        if not shutil.which(tool):
            return [f"{tool} is not installed: cannot run {SMOKE} (scripts/setup.sh should install it)"]
    contract, bad = Contract(), []
    with FakeApi(contract) as api:  # the whole flow
        rc, out = run_smoke(api)
        if rc != 0 or "PASS" not in out:
            bad.append(f"ok: exit {rc}, output:\n{out}")
        bad += [f"ok: {p}" for p in api.problems + in_order(api.log, FLOW) + leaks(api, out)]
        forgotten = [u for u, x in api.users.items() if x["status"] == "forgotten"]
        if len(forgotten) != 2:
            bad.append(f"ok: {len(forgotten)} users forgotten by the tidy-up, not the vendor and the customer")
    cases = (("decline", {}, None, r"FAIL order \S+ confirmed and paid within \d+ s: the order was cancelled: payment_declined"),
             ("ok", {}, "not the password", r"FAIL admin login: HTTP 401 urn:eventshop:problem:unauthorized"),
             ("stuck", {"SMOKE_TIMEOUT": "1"}, None, r"FAIL order \S+ confirmed and paid within 1 s: last seen: placed requested"))
    for mode, env, password, want in cases:
        with FakeApi(contract, mode) as api:
            rc, out = run_smoke(api, password, **env)
            name = mode if not password else "wrong admin password"
            if rc != 1 or not re.search(want, out):
                bad.append(f"{name}: exit {rc} (want 1 and /{want}/), output:\n{out}")
            bad += [f"{name}: {p}" for p in leaks(api, out)]
            bad += [f"{name}: {p}" for p in api.problems if "no valid bearer token" not in p or password is None]
            if mode == "decline" and sum(x["status"] == "forgotten" for x in api.users.values()) != 2:
                bad.append("decline: a failed smoke did not tidy up its users")
    return bad


def main():
    wf = workflow()
    check("the `make test` job can run dockerd (privileged, host cgroup namespace, /var/lib/docker on a volume)",
          dockerd_in_test_job(wf))
    check("pull requests run the compose test (`make test`, on every pull request, nothing skipping it)",
          prs_run_compose_test(wf))
    check("image job: no Debian security update pending in the built image, checked before the push",
          image_checks(wf, "security"))
    check("image job: SPDX JSON SBOM by a pinned syft (Go module), uploaded, made before the push",
          image_checks(wf, "sbom"))
    check("image job: scan failing on fixable HIGH/CRITICAL (pinned grype or trivy-action), before the push",
          image_checks(wf, "scan"))
    check("deploy: on tags, needs the checked image, smoke test after the rollout, rollout undo on failure()",
          deploy_after_checks(wf))
    check("every `uses:` pinned to a version tag or a sha", pinned_uses())
    check("secrets reach run: scripts through env only", secrets_through_env(wf))
    check(f"{SMOKE}: executable, bash -n, shellcheck{'' if shutil.which('shellcheck') else ' (not installed)'}, no xtrace",
          smoke_static())
    check(f"{SMOKE} against a stand-in API (bodies and roles per api/openapi.yaml): passes the flow, "
          "fails clearly, shows no secret", smoke_runs())
    return summary()


if __name__ == "__main__":
    sys.exit(main())
