#!/usr/bin/env bash
# Checks, without building an image, that docker/Dockerfile cannot drift away from the
# quick start: its build stage installs packages with scripts/install_deps.sh and builds
# with the Makefile's cmake options; its final stage installs only packages from that
# script's --runtime list (which must cover the shared libraries the built denserl needs),
# runs as a non-root user with denserl as the entrypoint, and both base images are NVIDIA
# CUDA 13 cuDNN images (devel, runtime) of one version. Runs hadolint when it is installed.
# Usage: tests/test_dockerfile.sh [DENSERL_BINARY]   (ctest passes the binary; it is used
# only for the shared-library check, which is skipped without it)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }

if ! runtime_list=$(bash scripts/install_deps.sh --list --runtime); then
    echo "FAIL: scripts/install_deps.sh --list --runtime did not print the runtime list"
    exit 1
fi
build_list=$(bash scripts/install_deps.sh --list)

# direct shared-library dependencies of the binary, as "soname path" lines
libs=""
bin=${1:-}
if [ -n "$bin" ] && [ -x "$bin" ] && command -v readelf >/dev/null && command -v ldd >/dev/null; then
    libs=$(ldd "$bin" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}')
    needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    libs=$(awk 'NR == FNR {want[$1] = 1; next} ($1 in want)' <(echo "$needed") <(echo "$libs"))
fi

RUNTIME_LIST="$runtime_list" BUILD_LIST="$build_list" LIBS="$libs" python3 - <<'PY'
import os, re, shlex, subprocess, sys

fails = 0
def check(ok, what, why=""):
    global fails
    print(("PASS: " if ok else "FAIL: ") + what + ("" if ok or not why else f" ({why})"))
    fails += not ok

def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        check(False, f"{path} is readable", str(e))
        sys.exit(1)

runtime_pkgs = set(os.environ["RUNTIME_LIST"].split())
build_pkgs = set(os.environ["BUILD_LIST"].split())
check(bool(runtime_pkgs) and not any(p.endswith("-dev") or p in ("build-essential", "cmake")
                                     for p in runtime_pkgs),
      "install_deps.sh --runtime lists packages and no compilers or -dev packages",
      " ".join(sorted(runtime_pkgs)))

# ---- Dockerfile: instructions (continuations joined, comments dropped), split into stages
lines, cur = [], ""
for raw in read("docker/Dockerfile").splitlines():
    s = raw.strip()
    if not cur and (not s or s.startswith("#")):
        continue
    if cur and s.startswith("#"):
        continue
    if s.endswith("\\"):
        cur += s[:-1] + " "
        continue
    lines.append(cur + s)
    cur = ""
if cur:
    lines.append(cur)
global_args, stages = {}, []
for ln in lines:
    word, _, rest = ln.partition(" ")
    word, rest = word.upper(), rest.strip()
    if word == "FROM":
        m = re.match(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
        stages.append({"base": m.group(1), "name": m.group(2), "ins": [], "args": {}})
    elif not stages:
        if word == "ARG":
            k, _, v = rest.partition("=")
            global_args[k] = v.strip('"')
    else:
        stages[-1]["ins"].append((word, rest))
        if word == "ARG":
            k, _, v = rest.partition("=")
            stages[-1]["args"][k] = v.strip('"')

def expand(s, args):
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), s)

check(len(stages) >= 2, "docker/Dockerfile is multi-stage", f"{len(stages)} FROM lines")
if len(stages) < 2:
    sys.exit(1)
build, final = stages[0], stages[-1]

# ---- base images: NVIDIA CUDA 13 with cuDNN, devel to build, runtime to run, one version
tag_re = re.compile(r"(?:nvcr\.io/)?nvidia/cuda:(\d+)\.(\d+)\.(\d+)-cudnn\d*-(devel|runtime)-(\S+)$")
tags = [re.match(tag_re, expand(st["base"], global_args)) for st in (build, final)]
check(all(tags), "both base images are nvidia/cuda *-cudnn-* tags",
      f"{expand(build['base'], global_args)}, {expand(final['base'], global_args)}")
if all(tags):
    b, f = (t.groups() for t in tags)
    check(b[0] == "13", "the base images are CUDA 13", ".".join(b[:3]))
    check(b[3] == "devel" and f[3] == "runtime", "build stage is cudnn-devel, final is cudnn-runtime")
    check(b[:3] == f[:3] and b[4] == f[4], "both base images have the same CUDA version and OS",
          f"{'.'.join(b[:3])}-{b[4]} vs {'.'.join(f[:3])}-{f[4]}")

def runs(st):
    return [expand(r, {**global_args, **st["args"]}) for w, r in st["ins"] if w == "RUN"]

def commands(st):
    """each simple command of the stage's RUN lines, as a list of shell words"""
    out = []
    for cmd in runs(st):
        lex = shlex.shlex(cmd, posix=True, punctuation_chars=";&|")
        lex.whitespace_split = True
        cur = []
        for t in lex:
            if t and set(t) <= set(";&|"):
                out.append(cur)
                cur = []
            else:
                cur.append(t)
        out.append(cur)
    return [c for c in out if c]

def apt_installs(st):
    """packages named by apt-get/apt install commands written in the stage itself"""
    out = []
    for toks in commands(st):
        for i, t in enumerate(toks):
            if re.fullmatch(r"(apt-get|apt|aptitude)", t) and "install" in toks[i + 1:]:
                rest = toks[toks.index("install", i) + 1:]
                out += [p.split("=")[0] for p in rest if not p.startswith("-")]
    return out

def script_calls(st):
    """the install_deps.sh invocations in the stage: (path, args)"""
    calls = []
    for toks in commands(st):
        if toks[0] == "rm":
            continue
        for i, t in enumerate(toks):
            if t.endswith("install_deps.sh"):
                calls.append((t, [a for a in toks[i + 1:] if a.startswith("--")]))
    return calls

def copies_script(st, path):
    for w, r in st["ins"]:
        if w != "COPY":
            continue
        toks = [t for t in r.split() if not t.startswith("--")]
        src, dst = toks[:-1], toks[-1]
        if "." in src and not path.startswith("/"):
            return True
        if "scripts/install_deps.sh" in src and (dst == path or dst.rstrip("/") + "/install_deps.sh" == path
                                                 or (not path.startswith("/") and dst == path)):
            return True
    return False

# ---- build stage: packages from the script, nothing of its own
calls = script_calls(build)
check(any(args == [] for _, args in calls), "build stage runs scripts/install_deps.sh (the quick start's list)")
check(all(copies_script(build, p) for p, _ in calls) and calls,
      "build stage copies scripts/install_deps.sh before running it")
own = apt_installs(build)
check(not own, "build stage has no apt install list of its own", " ".join(own))

# ---- cmake options: the Makefile's, plus only known options
mk = read("Makefile")
mk_vars = dict(re.findall(r"^(\w+)\s*\??=\s*(.*?)\s*$", mk, re.M))
mk_cfg = re.search(r"^\t\s*cmake\s+-S\s.*$", mk, re.M)
check(bool(mk_cfg), "Makefile has a cmake configure command")
if not mk_cfg:
    sys.exit(1)
mk_cfg = mk_cfg.group(0)
mk_opts = dict(re.findall(r"-D(\w+)(?::\w+)?=(\S+)", mk_cfg))
check(bool(re.search(r"^build:.*\bconfigure\b", mk, re.M)) and "$(CMAKE_FLAGS)" in mk_cfg,
      "Makefile's build target configures with $(CMAKE_FLAGS) appended")

def dopts(s):
    return {k: v for k, v in re.findall(r"-D(\w+)(?::\w+)?=([^\s'\"]+)", s)}

build_cmds = " && ".join(runs(build))
via_make = next((c for c in commands(build) if c[0] == "make" and "build" in c[1:]), None)
via_cmake = next((c for c in commands(build) if c[0] == "cmake" and ("-S" in c or "-B" in c)), None)
docker_opts, build_dir = {}, mk_vars.get("BUILD", "build")
if via_make:
    for w in via_make:
        if w.startswith("CMAKE_FLAGS="):
            docker_opts = dopts(w[len("CMAKE_FLAGS="):])
        if w.startswith("BUILD="):
            build_dir = w[len("BUILD="):]
    docker_opts = {**mk_opts, **docker_opts}
    how = "make build"
elif via_cmake:
    docker_opts = dopts(" ".join(via_cmake))
    if "-B" in via_cmake[:-1]:
        build_dir = via_cmake[via_cmake.index("-B") + 1]
    how = "cmake"
check(bool(via_make or via_cmake), "build stage builds with the Makefile's build target (or cmake)")
if via_make or via_cmake:
    diff = {k: (v, docker_opts.get(k)) for k, v in mk_opts.items() if docker_opts.get(k) != v}
    check(not diff, f"the Dockerfile's cmake options keep the Makefile's ({how})",
          ", ".join(f"{k}: Makefile {a}, Dockerfile {b}" for k, (a, b) in diff.items()))
    known = set(re.findall(r"option\((\w+)", read("CMakeLists.txt")))
    known |= set(re.findall(r"set\((\w+)[^)]*\bCACHE\b", read("CMakeLists.txt")))
    unknown = [k for k in docker_opts if k not in known and not k.startswith("CMAKE_")]
    check(not unknown, "every extra cmake option is one CMakeLists.txt defines", " ".join(unknown))
    check(docker_opts.get("DENSERL_NATIVE") == "OFF", "DENSERL_NATIVE=OFF (binary runs on any x86-64)")
    check(docker_opts.get("DENSERL_CUDA", "ON") == "ON", "the CUDA backend is not turned off")
    arch = docker_opts.get("CMAKE_CUDA_ARCHITECTURES", "")
    check(arch == "80;90", "CMAKE_CUDA_ARCHITECTURES comes from an ARG defaulting to 80;90",
          arch or "not set")
check(re.search(rf"(^|[\s/]){re.escape(build_dir)}/denserl\b", build_cmds + " ".join(
          r for w, r in final["ins"] if w == "COPY")) is not None,
      f"the image takes denserl from the build folder ({build_dir}/denserl)")

# ---- final stage: the script's runtime list, nothing else
calls = script_calls(final)
own = apt_installs(final)
extra = [p for p in own if p not in runtime_pkgs]
check(any("--runtime" in args for _, args in calls) or (own and not extra),
      "final stage installs the runtime packages of scripts/install_deps.sh --runtime")
check(all(copies_script(final, p) for p, _ in calls), "final stage copies the script it runs")
check(not extra, "every package the final stage installs is in the runtime list", " ".join(extra))
check(not any(args == [] for _, args in calls), "final stage does not install the build packages")
leaked = [w for w, r in final["ins"] if w == "COPY" and "--from" not in r and re.search(r"(^|\s)\.\s", r)]
check(not leaked, "final stage does not copy the whole source tree")

copies = [r for w, r in final["ins"] if w == "COPY"]
bin_dst = [r.split()[-1] for r in copies if "--from" in r]
check(any(re.match(r"/usr/(local/)?bin/?", d) for d in bin_dst),
      "final stage puts the binaries on PATH (/usr/local/bin or /usr/bin)", " ".join(bin_dst))
for d in ("configs", "benchmarks"):
    check(any(re.search(rf"(^|\s){d}/?\s", r) for r in copies), f"final stage copies {d}/")
users = [r for w, r in final["ins"] if w == "USER"]
check(bool(users) and users[-1].split(":")[0] not in ("root", "0"), "final stage runs as a non-root USER",
      users[-1] if users else "no USER")
check(any("useradd" in c or "adduser" in c for c in runs(final)), "final stage creates that user")
workdir = [r for w, r in final["ins"] if w == "WORKDIR"]
check(bool(workdir) and workdir[-1] == "/work", "WORKDIR /work", workdir[-1] if workdir else "none")
ep = [r for w, r in final["ins"] if w == "ENTRYPOINT"]
check(bool(ep) and re.fullmatch(r'\[\s*"(/usr/(local/)?bin/)?denserl"\s*\]', ep[-1]) is not None,
      'ENTRYPOINT ["denserl"] (exec form)', ep[-1] if ep else "none")
check(any(w == "CMD" for w, _ in final["ins"]), "final stage has a default CMD")

# ---- the runtime list covers the binary's direct shared libraries
libs = [l.split() for l in os.environ["LIBS"].splitlines() if l.strip()]
dpkg = subprocess.run(["sh", "-c", "command -v dpkg"], capture_output=True).returncode == 0
if not libs or not dpkg:
    print("SKIP: shared-library coverage (no binary, readelf, ldd or dpkg)")
else:
    base = {"libc6", "libgcc-s1", "libstdc++6"}  # in every Ubuntu base image
    # a library may come as a dependency of a listed package (libmpi with openmpi-bin, whose
    # library package is named differently on Debian and Ubuntu 24.04)
    deps = set()
    for pkg in runtime_pkgs:
        r = subprocess.run(["apt-cache", "depends", "--important", pkg], capture_output=True,
                           text=True)
        deps |= {l.split(":", 1)[1].strip() for l in r.stdout.splitlines() if "Depends:" in l}
    missing = []
    for soname, path in libs:
        real = os.path.realpath(path)
        if real.startswith("/usr/local/cuda") or re.search(r"/(libcu|libnccl|libcudnn|libnv)", real):
            continue  # comes with the CUDA base image
        owner = None
        for p in (real, path, re.sub(r"^/usr", "", real)):
            r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
            if r.returncode == 0:
                owner = r.stdout.split(":")[0].strip()
                break
        if owner is None:
            missing.append(f"{soname} (no package owns {real})")
        elif owner not in runtime_pkgs and owner not in base and owner not in deps:
            missing.append(f"{soname} from {owner}")
    check(not missing, "the runtime list has the package of every library denserl links",
          ", ".join(missing))

# ---- .dockerignore keeps build trees, runs, .git and .gpudeps out of the context
ign = [l.strip().strip("/") for l in read(".dockerignore").splitlines()
       if l.strip() and not l.startswith("#")]
for want in (".git", "build", "runs", ".gpudeps"):
    import fnmatch
    check(any(fnmatch.fnmatch(want, p) for p in ign), f".dockerignore excludes {want}")
sys.exit(1 if fails else 0)
PY
rc=$?

if command -v hadolint >/dev/null; then
    # info-level notes (such as DL3066 on the named USER) do not fail the test
    if hadolint --no-color --failure-threshold warning docker/Dockerfile; then
        echo "PASS: hadolint docker/Dockerfile"
    else
        echo "FAIL: hadolint docker/Dockerfile"
        rc=1
    fi
else
    echo "SKIP: hadolint not installed"
fi
exit $rc
