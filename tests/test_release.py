"""Release packaging: `python -m build` turns the Docker build context into an sdist and a wheel,
both install into clean virtual environments and report the package version, and the image's
install steps (wheels only, no index) give a working exporter and simulator.

There is no Docker engine on the test machines, so the Docker steps are replayed here: the build
context is assembled from the Dockerfile's COPY instructions (filtered by .dockerignore, as Docker
does), built once (module fixture), and the final stage's `pip install --no-index` runs in a
fresh venv. Slow (venvs, an isolated build): marked `slow`, still part of the normal run."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from exporter import __version__
from tests._deploy_support import (
    REPO,
    docker_ignored,
    dockerignore_patterns,
    http_get,
    metric_value,
    parse_dockerfile,
    running,
    wait_for,
)
from tests.conftest import free_port

pytestmark = pytest.mark.slow

DIST_NAME = "isolarcloud_exporter"


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _clean_env() -> dict[str, str]:
    # Nothing of the development environment may leak into the clean venvs.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _venv(path: Path) -> Path:
    """A clean venv without pip of its own: the running pip installs into it with --python, which
    saves seeding pip into every venv."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(path)])
    return path / "bin"


def _pip_install(bindir: Path, *args: str) -> None:
    _run([sys.executable, "-m", "pip", "--python", str(bindir / "python"), "install", "--quiet", *args],
         env=_clean_env(), cwd=bindir)


def _copy_filtered(source: Path, target: Path, rel: str, patterns: list[tuple[bool, str]]) -> None:
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for child in sorted(source.iterdir()):
            child_rel = f"{rel}/{child.name}"
            if not docker_ignored(child_rel, patterns):
                _copy_filtered(child, target / child.name, child_rel, patterns)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def assemble_build_context(root: Path) -> Path:
    """Replay the builder stage's WORKDIR/COPY instructions into `root` (standing for the
    container's /) and return the directory its RUN instructions work in."""
    patterns = dockerignore_patterns(REPO / ".dockerignore")
    _, stages = parse_dockerfile(REPO / "Dockerfile")
    builder = next(s for s in stages if s.name == "builder")
    workdir = PurePosixPath("/")
    for instruction in builder.instructions:
        if instruction.keyword == "WORKDIR":
            workdir = workdir / instruction.words()[0]
            (root / str(workdir).lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "COPY":
            assert "from" not in instruction.flags(), "the builder copies from the build context only"
            *sources, dest = instruction.words()
            dest_path = workdir / dest
            into_dir = dest.endswith("/") or len(sources) > 1
            for source in sources:
                host = REPO / source
                assert host.exists(), f"Dockerfile line {instruction.line}: COPY source {source} missing"
                assert not docker_ignored(source, patterns), f"{source} is excluded by .dockerignore"
                target = dest_path / PurePosixPath(source).name if into_dir and host.is_file() else dest_path
                _copy_filtered(host, root / str(target).lstrip("/"), source, patterns)
    return root / str(workdir).lstrip("/")


@contextlib.contextmanager
def _once(tmp_path_factory, name: str) -> Iterator[tuple[Path, bool]]:
    """A directory for `name` made once per test run. Under pytest-xdist the workers of one run
    share a base directory, so the first worker builds while the others wait on the lock and
    reuse its result (a module fixture alone would build once per worker)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent / name
        shared.mkdir(exist_ok=True)
        with open(shared.parent / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                done = shared / ".done"
                yield shared, done.exists()
                done.touch()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    else:
        yield tmp_path_factory.mktemp(name), False


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """One build for the module: the sdist and the wheel (built from the sdist, as `python -m build`
    does), from exactly what the Dockerfile copies into its builder."""
    with _once(tmp_path_factory, "release-dist") as (work, reuse):
        out = work / "dist"
        if not reuse:
            context = assemble_build_context(work / "docker-root")
            _run([sys.executable, "-m", "build", "--outdir", str(out), str(context)], env=_clean_env())
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


@pytest.fixture(scope="module")
def image_venv(dist, tmp_path_factory) -> Path:
    """The final image stage: wheels of the project and its dependencies collected as the builder
    does (`pip wheel`), then installed with `--no-index` so nothing but those wheels is used."""
    with _once(tmp_path_factory, "release-image") as (work, reuse):
        bindir = work / "venv" / "bin"
        if not reuse:
            wheels = work / "wheels"
            _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels),
                  str(dist["wheel"])], env=_clean_env())
            _venv(work / "venv")
            (project_wheel,) = wheels.glob(f"{DIST_NAME}-*.whl")
            _pip_install(bindir, "--no-cache-dir", "--no-index", f"--find-links={wheels}", str(project_wheel))
    return bindir


def test_build_produces_versioned_wheel_and_sdist(dist):
    assert dist["wheel"].name.startswith(f"{DIST_NAME}-{__version__}-")
    assert dist["wheel"].name.endswith("-py3-none-any.whl"), "pure Python: one wheel for amd64 and arm64"
    assert dist["sdist"].name == f"{DIST_NAME}-{__version__}.tar.gz"
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = wheel.namelist()
        entry_points = wheel.read(f"{DIST_NAME}-{__version__}.dist-info/entry_points.txt").decode()
        metadata = wheel.read(f"{DIST_NAME}-{__version__}.dist-info/METADATA").decode()
    assert "exporter/__init__.py" in names and "exporter/simulator/__init__.py" in names
    assert not [n for n in names if n.startswith(("tests/", "deploy/")) or "__pycache__" in n]
    assert re.search(r"^isolarcloud-exporter = exporter\.cli:main$", entry_points, re.M)
    assert re.search(r"^isolarcloud-simulator = ", entry_points, re.M)
    assert f"Version: {__version__}" in metadata
    # PEP 639: an SPDX expression and the licence text itself, not the deprecated table form.
    assert re.search(r"^License-Expression: Apache-2\.0$", metadata, re.M)
    assert re.search(r"^License-File: LICENSE$", metadata, re.M) and not re.search(r"^License: ", metadata, re.M)
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        licence = wheel.read(f"{DIST_NAME}-{__version__}.dist-info/licenses/LICENSE").decode()
    assert licence == (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence and "END OF TERMS" in licence
    # The rules and dashboards, for `isolarcloud-exporter assets`: exactly the repository's files.
    assert sorted(n.split("exporter/assets/", 1)[1] for n in names if n.startswith("exporter/assets/")) == sorted(
        asset for asset, _ in shipped_assets_in_repo())
    with tarfile.open(dist["sdist"]) as sdist:
        members = {PurePosixPath(m).relative_to(f"{DIST_NAME}-{__version__}").as_posix()
                   for m in sdist.getnames() if "/" in m}
    assert {"pyproject.toml", "README.md", "exporter/__init__.py"} <= members


def shipped_assets_in_repo() -> list[tuple[str, Path]]:
    """The files `assets` writes (relative path, repository file): the rules with their tests, their templates
    and generator, the example Prometheus and Alertmanager configurations, the dashboards, the Grafana
    provisioning."""
    files = [*sorted((REPO / "prometheus").glob("*.yml")), *sorted((REPO / "prometheus").glob("*.py")),
             *sorted((REPO / "prometheus/src").glob("*.yml")), *sorted((REPO / "prometheus/tests").glob("*.yml")),
             *sorted((REPO / "grafana/dashboards").glob("*.json")),
             *sorted((REPO / "grafana/provisioning").glob("*/*.yml"))]
    return [(p.relative_to(REPO).as_posix(), p) for p in files]


def test_every_package_directory_is_packaged():
    """pyproject.toml lists the packages (the assets need a package-dir mapping): a new subpackage of exporter/
    must be added there, or the wheel would silently lack it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {p.parent.relative_to(REPO).as_posix().replace("/", ".") for p in (REPO / "exporter").rglob("*.py")
             if "__pycache__" not in p.parts}
    assert found <= listed, f"not in pyproject.toml [tool.setuptools] packages: {sorted(found - listed)}"


def _version_of(bindir: Path) -> str:
    return _run([str(bindir / "isolarcloud-exporter"), "--version"], env=_clean_env(), cwd=bindir).stdout


def test_wheel_installs_in_a_clean_venv(dist, tmp_path):
    bindir = _venv(tmp_path / "venv")
    _pip_install(bindir, str(dist["wheel"]))
    assert _version_of(bindir).split() == ["isolarcloud-exporter", __version__]


def test_sdist_installs_in_a_clean_venv(dist, tmp_path):
    bindir = _venv(tmp_path / "venv")
    _pip_install(bindir, str(dist["sdist"]))
    assert _version_of(bindir).split() == ["isolarcloud-exporter", __version__]


def test_assets_written_from_the_installed_package(image_venv, tmp_path, promtool):
    """A pip (or image) user gets the rules and dashboards of the version they run, and they work standalone:
    promtool checks the rules and runs their unit tests from the written tree."""
    out = tmp_path / "isolarcloud"
    exporter = str(image_venv / "isolarcloud-exporter")
    done = _run([exporter, "assets", "--output", str(out)], env=_clean_env(), cwd=tmp_path)
    expected = shipped_assets_in_repo()
    assert f"Wrote {len(expected)} files to {out}" in done.stdout
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(rel for rel, _ in expected)
    for rel, source in expected:
        assert (out / rel).read_bytes() == source.read_bytes(), rel
    check = subprocess.run([promtool, "check", "rules", str(out / "prometheus/alerts.yml"),
                            str(out / "prometheus/rules.yml")], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    # One unit test file shows that the written tree holds together (its `rule_files` path resolves); the files are
    # the repository's, byte for byte, and tests/test_rules.py runs every one of them.
    tests = subprocess.run([promtool, "test", "rules", str(out / "prometheus/tests/operations_test.yml")],
                           capture_output=True, text=True, timeout=120, cwd=out)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    # The written generator renders the rules for another job from the written templates (docs/alerts.md#job-name).
    (tmp_path / "mine.yml").write_text("selector: 'job=\"solar\"'\n", encoding="utf-8")
    _run([str(image_venv / "python"), str(out / "prometheus/generate.py"), "--config", str(tmp_path / "mine.yml"),
          "--out", str(tmp_path / "mine")], env=_clean_env(), cwd=tmp_path)
    mine = (tmp_path / "mine/alerts.yml").read_text(encoding="utf-8")
    assert 'job="solar"' in mine and 'job="isolarcloud"' not in mine
    # Nothing is overwritten unless asked.
    again = subprocess.run([exporter, "assets", "--output", str(out)], env=_clean_env(), capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 2 and "--force overwrites" in again.stderr and again.stderr.count("\n") == 1
    (out / "prometheus/alerts.yml").write_text("edited")
    _run([exporter, "assets", "--output", str(out), "--force"], env=_clean_env(), cwd=tmp_path)
    assert (out / "prometheus/alerts.yml").read_bytes() == (REPO / "prometheus/alerts.yml").read_bytes()


def _checkout_files() -> list[str]:
    """The files of a clean clone: tracked ones, and new ones not yet committed (but never ignored ones)."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, text=True, timeout=60)
    if listed.returncode != 0:
        pytest.skip("not a git checkout (an unpacked sdist, say): no clean clone to build from")
    return [f for f in listed.stdout.split("\0") if f and (REPO / f).is_file()]


@pytest.fixture(scope="module")
def checkout_sdist(tmp_path_factory) -> Path:
    """The sdist built from a clean clone's files, unpacked."""
    with _once(tmp_path_factory, "release-checkout-sdist") as (work, reuse):
        if not reuse:
            tree = work / "clone"
            for rel in _checkout_files():
                (tree / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, tree / rel)
            _run([sys.executable, "-m", "build", "--sdist", "--outdir", str(work / "dist"), str(tree)],
                 env=_clean_env())
            (sdist,) = (work / "dist").glob("*.tar.gz")
            with tarfile.open(sdist) as archive:
                archive.extractall(work / "unpacked", filter="data")
    (unpacked,) = (work / "unpacked").iterdir()
    return unpacked


def test_sdist_tests_run_from_the_sdist(checkout_sdist):
    """The sdist is the whole source: every test module collects from it, and the fast tests pass in it (what a
    distribution packager runs), with no file of the checkout on the path."""
    for needed in ("LICENSE", "tests/conftest.py", "tests/golden/metrics.prom", "prometheus/tests/alerts_test.yml",
                   "docs/configuration.md", "grafana/dashboards/isolarcloud-fleet.json", "Dockerfile"):
        assert (checkout_sdist / needed).is_file(), f"the sdist lacks {needed}"
    assert not list(checkout_sdist.rglob("__pycache__")) and not (checkout_sdist / ".venv").exists()
    env = {**_clean_env(), "PYTHONPATH": str(checkout_sdist), "PYTHONDONTWRITEBYTECODE": "1"}
    pytest_cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-q"]
    collected = subprocess.run([*pytest_cmd, "--collect-only", "tests"], cwd=checkout_sdist, env=env,
                               capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    assert re.search(r"^(\d+) tests collected", collected.stdout, re.M)
    # The tests that read the sdist's data files (golden files, docs, configuration fixtures); tests/unit is
    # code only, which the collection above already imported.
    ran = subprocess.run([*pytest_cmd, "tests/test_golden.py", "tests/test_architecture.py",
                          "tests/test_config.py", "tests/test_model.py"],
                         cwd=checkout_sdist, env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    summary = ran.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary and "error" not in summary, summary


def test_image_steps_give_a_working_exporter(image_venv, tmp_path):
    """The image's entrypoint in --demo mode answers /-/healthy, and the image's own HEALTHCHECK
    command (run with the image's interpreter) agrees."""
    assert _version_of(image_venv).split() == ["isolarcloud-exporter", __version__]
    _, (_, final) = parse_dockerfile(REPO / "Dockerfile")
    (check,) = final.all("HEALTHCHECK")
    interpreter, flag, healthcheck = json.loads(check.args[check.args.index("CMD [") + 4:])
    assert (interpreter, flag) == ("python", "-c")
    entrypoint = final.all("ENTRYPOINT")[-1].words()
    port = free_port()
    cmd = [str(image_venv / entrypoint[0]), "--demo", f"--web.listen-address=127.0.0.1:{port}"]
    with running(cmd, env=_clean_env(), cwd=tmp_path) as proc:
        wait_for(f"http://127.0.0.1:{port}/-/healthy", proc)
        env = {**_clean_env(), "HEALTHCHECK_URL": f"http://127.0.0.1:{port}/-/healthy"}
        probe = subprocess.run([str(image_venv / "python"), "-c", healthcheck], env=env, capture_output=True,
                               text=True, timeout=30)
        assert probe.returncode == 0, probe.stderr
        body = wait_for(f"http://127.0.0.1:{port}/metrics", proc, deadline=60,
                        predicate=lambda status, text: "isolarcloud_up" in text)
        assert metric_value(body, "isolarcloud_exporter_build_info", version=__version__) == 1.0
    # With nothing listening the same check must fail, or Docker would never see an unhealthy exporter.
    probe = subprocess.run([str(image_venv / "python"), "-c", healthcheck], env=env, capture_output=True,
                           text=True, timeout=30)
    assert probe.returncode == 1


def test_image_steps_give_the_simulator_of_the_demo_stack(image_venv, tmp_path):
    port = free_port()
    cmd = [str(image_venv / "isolarcloud-simulator"), "--listen-address", f"127.0.0.1:{port}", "--plants", "50"]
    with running(cmd, env=_clean_env(), cwd=tmp_path) as proc:
        wait_for(f"http://127.0.0.1:{port}/", proc, predicate=lambda status, body: status > 0)
        assert http_get(f"http://127.0.0.1:{port}/")[0] < 500


def test_changelog_describes_this_version():
    """Keep a Changelog: an Unreleased section on top, then one dated section per version, the
    current one included."""
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.M)
    assert headings[0] == ("Unreleased", "")
    versions = [v for v, _ in headings[1:]]
    assert __version__ in versions, f"CHANGELOG.md has no section for {__version__}"
    assert all(date for _, date in headings[1:]), "every released version carries its date"
    section = text.split(f"## [{__version__}]", 1)[1].split("\n## [", 1)[0]
    assert "### Added" in section or "### Changed" in section or "### Fixed" in section
