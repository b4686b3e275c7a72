"""Shared readers of the deploy checks (tests/deploy/*.py): the Dockerfile's stages and what each
image holds, the CMake files' executables, `kustomize build` of an overlay. Static: starts nothing
but kustomize."""
import os
import re
import shlex
import subprocess
import sys

import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KUSTOMIZE = os.path.join(TOP, ".cache", "bin", "kustomize")
BIN_DIR = "/usr/local/bin/"
# our images, by repository name: the Dockerfile stage each is built from (None: the last stage,
# the default target of `docker build`)
IMAGES = {"eventshop": None, "eventshop-test": "test"}


def read(path, top=TOP):
    with open(os.path.join(top, path)) as f:
        return f.read()


def image_name(ref):
    """'eventshop' or 'eventshop-test' for a reference to one of our images, else None"""
    name = ref.split("@")[0].split("/")[-1].split(":")[0]
    return name if name in IMAGES else None


# ---------------------------------------------------------------- the Dockerfile
class Stage:
    def __init__(self, index, base, name):
        self.index, self.base, self.name = index, base, name
        self.parent = None  # the earlier Stage it is FROM, if any
        self.instructions = []  # [(INSTRUCTION, argument text)]


def _logical_lines(text):
    """the Dockerfile's instructions: comments dropped, continuation lines joined"""
    out, cur = [], ""
    for ln in text.splitlines():
        if not cur and (not ln.strip() or ln.lstrip().startswith("#")):
            continue
        if cur and ln.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        if ln.rstrip().endswith("\\"):
            cur += ln.rstrip()[:-1] + " "
            continue
        out.append(cur + ln)
        cur = ""
    if cur.strip():
        out.append(cur)
    return out


def parser_directives(text):
    """the leading `# directive=value` lines (e.g. syntax=, which makes BuildKit fetch a front-end
    image), as {directive: value}"""
    out = {}
    for ln in text.splitlines():
        m = re.match(r"#\s*([A-Za-z_]+)\s*=\s*(.*?)\s*$", ln)
        if not m:
            break
        out[m.group(1).lower()] = m.group(2)
    return out


def dockerfile_stages(text=None):
    text = read("Dockerfile") if text is None else text
    stages, by_name = [], {}
    for ln in _logical_lines(text):
        instr, _, arg = ln.strip().partition(" ")
        instr, arg = instr.upper(), arg.strip()
        if instr == "FROM":
            w = [x for x in arg.split() if not x.startswith("--")]
            st = Stage(len(stages), w[0], w[2].lower() if len(w) > 2 and w[1].upper() == "AS" else None)
            st.parent = by_name.get(w[0].lower())
            stages.append(st)
            if st.name:
                by_name[st.name] = st
        elif stages:
            stages[-1].instructions.append((instr, arg))
    return stages


def stage_of(stages, image):
    """the Stage an image of IMAGES is built from, or None if the Dockerfile has no such stage"""
    target = IMAGES[image]
    if target is None:
        return stages[-1] if stages else None
    return next((s for s in stages if s.name == target), None)


def chain(stage):
    """the stage and the stages it is built FROM, oldest first"""
    out = []
    while stage:
        out.insert(0, stage)
        stage = stage.parent
    return out


def _env_pairs(arg):
    words = shlex.split(arg)
    if words and "=" not in words[0]:  # legacy `ENV NAME value...`
        return {words[0]: " ".join(words[1:])}
    return dict(w.split("=", 1) for w in words)


def image_env(stage):
    env = {}
    for st in chain(stage):
        for instr, arg in st.instructions:
            if instr == "ENV":
                env.update(_env_pairs(arg))
    return env


def image_last(stage, which):
    """the argument of the last `which` instruction (CMD, USER, HEALTHCHECK) in the stage's chain"""
    got = None
    for st in chain(stage):
        for instr, arg in st.instructions:
            if instr == which:
                got = arg
    return got


def image_cmd(stage):
    arg = image_last(stage, "CMD")
    if not arg:
        return []
    return yaml.safe_load(arg) if arg.startswith("[") else ["sh", "-c", arg]


def _shell_commands(run):
    """the simple commands of a RUN line, as argv lists (split on && ; ||)"""
    out = []
    for part in re.split(r"&&|\|\||;", run):
        try:
            argv = shlex.split(part)
        except ValueError:
            continue
        if argv:
            out.append(argv)
    return out


def build_outputs(stage):
    """what a build stage puts where: ({directory: [source path]} of its `install ... -t DIR
    FILES` and `cp FILES DIR/` commands, the set of `cmake --build ... --target` names or None
    when it builds everything)"""
    dirs, targets = {}, None
    for instr, arg in stage.instructions:
        if instr != "RUN":
            continue
        for argv in _shell_commands(arg):
            if argv[0] == "install" and "-t" in argv:
                files, i = [], 1
                while i < len(argv):
                    if argv[i] in ("-t", "-m", "-o", "-g"):  # options with a value
                        i += 2
                        continue
                    if not argv[i].startswith("-"):
                        files.append(argv[i])
                    i += 1
                dirs.setdefault(argv[argv.index("-t") + 1].rstrip("/"), []).extend(files)
            elif argv[0] == "cp" and len(argv) > 2:
                files = [a for a in argv[1:-1] if not a.startswith("-")]
                dirs.setdefault(argv[-1].rstrip("/"), []).extend(files)
            elif argv[:2] == ["cmake", "--build"] and "--target" in argv:
                targets = set()
                for a in argv[argv.index("--target") + 1:]:
                    if a.startswith("-"):
                        break
                    targets.add(a)
    return dirs, targets


def image_binaries(stages, stage):
    """{name: source path in its build stage} of the executables the stage's chain copies into
    /usr/local/bin with COPY --from=<stage> <dir>/ /usr/local/bin/, and the problems found"""
    by_name = {s.name: s for s in stages if s.name}
    out, problems = {}, []
    for st in chain(stage):
        for instr, arg in st.instructions:
            if instr != "COPY":
                continue
            w = shlex.split(arg)
            frm = next((x.split("=", 1)[1] for x in w if x.startswith("--from=")), None)
            paths = [x for x in w if not x.startswith("--")]
            if not frm or len(paths) != 2 or paths[1].rstrip("/") + "/" != BIN_DIR:
                continue
            src = by_name.get(frm.lower())
            if not src:
                problems.append(f"COPY --from={frm}: no such stage")
                continue
            dirs, targets = build_outputs(src)
            for p in dirs.get(paths[0].rstrip("/"), []):
                name = os.path.basename(p)
                out[name] = p
                if targets is not None and name not in targets:
                    problems.append(f"stage {src.name}: installs {p} but builds only --target {sorted(targets)}")
    return out, problems


# ---------------------------------------------------------------- CMake
def cmake_executables(top=TOP):
    """{name: directory (relative to top) of the CMake file that adds it} for every literal
    add_executable(name ...) in the source tree's CMakeLists.txt and *.cmake files (build trees,
    caches and state left out)"""
    skip = {".git", ".cache", ".state", ".pytest_cache", "node_modules"}
    out = {}
    for d, dirs, files in os.walk(top):
        rel = os.path.relpath(d, top)
        dirs[:] = [x for x in dirs if x not in skip and not x.startswith("build") and not x.startswith(".")]
        for f in files:
            if f != "CMakeLists.txt" and not f.endswith(".cmake"):
                continue
            text = re.sub(r"#[^\n]*", "", read(os.path.join(rel, f), top))
            for m in re.finditer(r"\badd_executable\s*\(\s*([A-Za-z0-9_.+-]+)", text):
                out[m.group(1)] = "" if rel == "." else rel
    return out


# ---------------------------------------------------------------- Kubernetes
def kustomize(overlay, top=TOP, under="overlays"):
    """the objects of `kustomize build deploy/<under>/<overlay>` (under "jobs": deploy/jobs)"""
    p = subprocess.run([KUSTOMIZE, "build", os.path.join(top, "deploy", under, overlay)],
                       capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"kustomize build {overlay}: {p.stderr}")
    return [d for d in yaml.safe_load_all(p.stdout) if d]


def pod_spec(d):
    if d["kind"] == "CronJob":
        return d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return d["spec"]["template"]["spec"]


results = []  # one bool per check of the running script


def check(name, problems):
    """One PASS/FAIL line, the problems below a FAIL."""
    results.append(not problems)
    print(("PASS " if not problems else "FAIL ") + name)
    for p in sorted(set(problems)):
        print("    " + p)


def summary():
    """The last line ("N passed, N failed"); the script's exit status."""
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1
