#!/usr/bin/env python3
"""The images the Dockerfile makes hold what the deployments run (issue 9, item 1). Static: reads
the Dockerfile, the CMake files, docker-compose.yml and `kustomize build` of each overlay; builds
nothing.

- no parser directive (`# syntax=` makes BuildKit fetch a front-end image; we build with the
  classic builder);
- the default target (the last stage) is the production image `eventshop`, and a separate stage
  `test` makes `eventshop-test`, neither built from the other;
- the production image holds every executable of the CMake files (add_executable) but the
  stand-ins (eventshop-test-*: in the test image only), the unit tests (tests/) and those of
  NOT_SHIPPED, each from the build directory of the CMake file that adds it and built by the
  build stage's `cmake --build --target` list; neither image holds a name no CMake file adds;
- both images run as a non-root user;
- every container of compose, of the overlays and of deploy/jobs that runs one of our images runs an executable
  that image holds (its command, its image's CMD, or each eventshop-* a `sh -c` script calls).

usage: .cache/deploy-venv/bin/python tests/deploy/test_image.py"""
import re
import shlex
import sys

import yaml

from deploylib import (check, summary, IMAGES, chain, cmake_executables, dockerfile_stages, image_binaries, image_cmd,
                       image_last, image_name, kustomize, parser_directives, pod_spec, read, stage_of)

OVERLAYS = ("dev", "prod")
STANDIN = re.compile(r"eventshop-test-")  # stand-ins for the outside world: the test image only
# executables in no image, and why
NOT_SHIPPED = {
    "eventshop-bench-raw": "bench/: `make bench`'s raw producer baseline, a measurement, no operator tool",
    "eventshop-bench-raw-consume": "bench/: `make bench`'s raw consumer baseline of export, a measurement",
    "eventshop-bench-raw-hop": "bench/: `make bench`'s raw transactional hop, the command latencies' limit",
    "eventshop-bench-ref": "bench/: `make bench`'s libh2o fixed-body server, the hot GET's limit",
    "eventshop-bench-raw-upsert": "bench/: `make bench`'s multi-row upserts, the projector's limit",
    "eventshop-bench-encode": "bench/: the CPU cost of ev_encode per record, a measurement for engineers",
}
TEST_DIRS = ("tests",)  # unit and integration test executables



def wanted(exes):
    """{image: {name: cmake dir}} of what each image must hold"""
    out = {"eventshop": {}, "eventshop-test": {}}
    for name, d in exes.items():
        if STANDIN.match(name):  # the stand-ins (tests/stand-ins/): the test image only
            out["eventshop-test"][name] = d
        elif d.split("/")[0] not in TEST_DIRS and name not in NOT_SHIPPED:
            out["eventshop"][name] = d
    return out


def contents(stages, exes):
    problems = []
    want = wanted(exes)
    for image in IMAGES:
        have, probs = image_binaries(stages, stage_of(stages, image))
        problems += [f"{image}: {p}" for p in probs]
        for name, d in sorted(want[image].items()):
            src = f"/build/{d}/{name}" if d else f"/build/{name}"
            if name not in have:
                problems.append(f"{image}: lacks {name} (add_executable in {d or '.'}/)")
            elif have[name] != src:
                problems.append(f"{image}: {name} copied from {have[name]}, built at {src}")
        for name in sorted(set(have) - set(want[image])):
            if name not in exes:
                problems.append(f"{image}: holds {name}, which no CMake file adds")
            elif STANDIN.match(name):
                problems.append(f"{image}: holds the stand-in {name} (the test image's only)")
            else:
                problems.append(f"{image}: holds {name}, which is not shipped"
                                f" ({NOT_SHIPPED.get(name, 'a test executable')})")
    return problems


def targets(stages):
    prod, test = stage_of(stages, "eventshop"), stage_of(stages, "eventshop-test")
    bad = []
    if not prod or not test:
        return ["the Dockerfile has no last stage or no stage `test`"]
    if prod is test:
        return ["the test stage is the last stage: `docker build .` would make the test image"]
    if test in chain(prod):
        bad.append(f"the production stage {prod.name} is built FROM the test stage")
    if prod in chain(test):
        bad.append(f"the test stage is built FROM the production stage {prod.name}")
    return bad


def non_root(stages):
    bad = []
    for image in IMAGES:
        st = stage_of(stages, image)
        user = (image_last(st, "USER") or "root") if st else "root"
        if user.split(":")[0] in ("root", "0"):
            bad.append(f"{image}: runs as {user}")
    return bad


def executables_of(argv):
    """the eventshop-* executables a container's argv runs"""
    if not argv:
        return []
    if argv[0] in ("sh", "bash") and "-c" in argv:
        script = argv[argv.index("-c") + 1]
        return re.findall(r"(?<![\w/-])(eventshop-[a-z][a-z-]*)", script)
    return [argv[0].split("/")[-1]]


def runs_what_it_holds(stages):
    held = {im: set(image_binaries(stages, stage_of(stages, im))[0]) for im in IMAGES}
    cmd = {im: image_cmd(stage_of(stages, im)) for im in IMAGES}
    bad, seen = [], 0
    containers = []
    for name, svc in yaml.safe_load(read("docker-compose.yml"))["services"].items():
        argv = svc.get("command")
        argv = shlex.split(argv) if isinstance(argv, str) else [str(a) for a in argv or []]
        containers.append((f"compose {name}", svc.get("image", ""), argv))
    for o in OVERLAYS:
        for d in kustomize(o) + kustomize(o, under="jobs"):  # and its on-demand Jobs (deploy/jobs)
            if d["kind"] not in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"):
                continue
            pod = pod_spec(d)
            for c in pod.get("initContainers", []) + pod["containers"]:
                containers.append((f"{o} {d['kind']}/{d['metadata']['name']}/{c['name']}", c["image"],
                                   [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]))
    for where, image, argv in containers:
        im = image_name(image)
        if not im:
            continue
        seen += 1
        for exe in executables_of(argv or cmd[im]):
            if exe not in held[im]:
                other = [x for x in IMAGES if exe in held[x]]
                bad.append(f"{where}: runs {exe}, which image {im} lacks"
                           + (f" (it is in {other[0]})" if other else ""))
    return bad if seen else ["no container runs our images"]


def main():
    text = read("Dockerfile")
    stages = dockerfile_stages(text)
    exes = cmake_executables()
    check("Dockerfile: no parser directive (# syntax= would make BuildKit fetch a front-end image)",
          [f"# {k}={v}" for k, v in parser_directives(text).items()])
    check("Dockerfile: the default target is the production image, `test` a stage of its own", targets(stages))
    want = wanted(exes)
    check(f"image eventshop holds every shipped add_executable ({len(want['eventshop'])}: "
          f"{' '.join(sorted(want['eventshop']))}), eventshop-test the stand-ins "
          f"({' '.join(sorted(want['eventshop-test']))}); not shipped: "
          f"{' '.join(sorted(n for n in exes if n not in want['eventshop'] and n not in want['eventshop-test']))}",
          contents(stages, exes) if not targets(stages) else ["no images to look into"])
    check("both images run as a non-root user", non_root(stages))
    check("every container (compose, overlays) runs an executable its image holds", runs_what_it_holds(stages))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
