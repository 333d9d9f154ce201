"""callbot installed from its wheel, as the Dockerfile installs it, runs with nothing from the checkout.

The wheel is built from this checkout (`pip wheel --no-deps`) and installed into a fresh venv the
way the Dockerfile's runtime stage does it: the pinned `requirements.txt` with `--require-hashes`,
then the wheel with `--no-deps`. The installed `callbot` then runs from an empty directory with a
clean environment: --version, migrate (the migrations ship inside the wheel), grant, a dry run and
serve. Docker itself cannot run here; these are its install steps. The Procfile's lines run too,
after a Procfile platform's build steps: requirements.txt, then the bin/post_compile hook.

Slow-ish (a venv and some 35 packages, from pip's cache once warm): built once per module.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import bot
from tests.fakes.slack import BOT_TOKEN, FakeSlack
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.processes import wait_healthy
from tests.support.bots import SIGNING_SECRET

# Nothing here touches the test database: CI's second pass (PostgreSQL) need not build it all again.
# One xdist worker runs them all (tests/support/scheduling.py), so the wheel and the build tool are made once.
pytestmark = pytest.mark.skipif(
    bool(os.environ.get("CALLBOT_TEST_DATABASE_URL")), reason="database-independent: runs in the SQLite pass"
)

CHECKOUT = Path(__file__).resolve().parents[1]
ADMIN = "U012AB3CD"
CALL = "CA0123456789abcdef0123456789abcdef"
# What a shell outside the checkout would have: no PYTHONPATH, no VIRTUAL_ENV, nothing of ours.
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    site_packages: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def callbot(self) -> Path:
        return self.venv / "bin" / "callbot"


def _run(args: list[str | Path], *, timeout: float = 300, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def _tool_env() -> dict[str, str]:
    """The environment for pip and venv: this machine's pip settings, nothing pointing at the checkout
    (./dev test's PYTHONPYCACHEPREFIX included: pip compiles what it installs into the venv itself)."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONPYCACHEPREFIX")
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel-install")
    dist = root / "dist"
    pip = ["-m", "pip", "--disable-pip-version-check", "--quiet"]
    _run([sys.executable, *pip, "wheel", "--no-deps", "--wheel-dir", dist, CHECKOUT], env=_tool_env())
    [wheel] = dist.glob("*.whl")

    venv = root / "venv"
    _run([sys.executable, "-m", "venv", venv], env=_tool_env())
    python = venv / "bin" / "python"
    # The Dockerfile's runtime stage, step for step.
    _run([python, *pip, "install", "--require-hashes", "-r", CHECKOUT / "requirements.txt"], env=_tool_env())
    _run([python, *pip, "install", "--no-deps", wheel], env=_tool_env())
    _run([python, *pip, "check"], env=_tool_env())  # the pins satisfy what the wheel asks for
    purelib = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root, env=_tool_env()
    ).stdout
    return Installed(wheel, venv, Path(purelib.strip()))


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


def _clean_env(installed: Installed, home: Path, **extra: str) -> dict[str, str]:
    return {"PATH": f"{installed.venv / 'bin'}{os.pathsep}{SYSTEM_PATH}", "HOME": str(home), "LANG": "C.UTF-8", **extra}


@pytest.mark.timeout(600)
def test_the_wheel_holds_bot_and_its_migrations_and_nothing_else(installed: Installed) -> None:
    version = bot.__version__
    assert installed.wheel.name == f"callbot-{version}-py3-none-any.whl"
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        dist_info = f"callbot-{version}.dist-info"
        wheel_metadata = wheel.read(f"{dist_info}/METADATA").decode()
        entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()

    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert {n.split("/")[0] for n in names} == {"bot", dist_info}
    package = {p.relative_to(CHECKOUT).as_posix() for p in (CHECKOUT / "bot").rglob("*.py")}
    assert package <= names
    migrations = {
        "bot/" + p.relative_to(CHECKOUT).as_posix()
        for p in (CHECKOUT / "migrations").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert {
        "bot/migrations/env.py",
        "bot/migrations/script.py.mako",
        "bot/migrations/versions/0001_grants_and_audit.py",
    } <= (migrations)
    assert migrations <= names
    assert {n for n in names if n.startswith("bot/migrations/")} == migrations
    assert f"\nVersion: {version}\n" in wheel_metadata
    assert re.search(r"^callbot = bot\.cli:main$", entry_points, re.MULTILINE)


@pytest.mark.timeout(600)
def test_the_installed_callbot_runs_from_an_empty_directory(
    installed: Installed, empty_dir: Path, tmp_path: Path, fake_slack: FakeSlack, unused_port: int
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = _clean_env(
        installed,
        home,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_API_URL=fake_slack.api_url,  # nothing leaves the machine
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
    )
    secrets = [SIGNING_SECRET, BOT_TOKEN, AUTH_TOKEN, base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()]

    def callbot(*args: str) -> subprocess.CompletedProcess[str]:
        result = _run([installed.callbot, *args], cwd=empty_dir, env=env, timeout=60)
        for secret in secrets:
            assert secret not in result.stdout + result.stderr
        return result

    # Everything imported comes from the venv: the checkout is nowhere on the path.
    probe = _run(
        [
            installed.python,
            "-c",
            "import json, sys, bot.cli, bot.db.migrate as m; print(json.dumps({'bot': bot.__file__, "
            "'migrations': str(m.migrations_dir()), 'path': sys.path, "
            "'modules': sorted(getattr(x, '__file__', None) or '' for x in list(sys.modules.values()))}))",
        ],
        cwd=empty_dir,
        env=env,
    )
    found = json.loads(probe.stdout)
    assert Path(found["bot"]) == installed.site_packages / "bot" / "__init__.py"
    assert Path(found["migrations"]) == installed.site_packages / "bot" / "migrations"
    assert not [entry for entry in found["path"] if str(CHECKOUT) in entry]
    assert not [module for module in found["modules"] if module.startswith(str(CHECKOUT))]

    assert callbot("--version").stdout == f"callbot {bot.__version__}\n"

    assert callbot("migrate").stdout == "database schema is up to date\n"
    assert (empty_dir / "callbot.db").is_file()  # the default sqlite:///./callbot.db, where it ran

    assert f"Granted to <@{ADMIN}>: admin on *." in callbot("grant", ADMIN, "admin").stdout

    dry = callbot("run", "--as", ADMIN, f"hangup {CALL} dry-run").stdout.splitlines()
    assert f"Dry run: hangup twilio:{CALL}. Nothing was sent." in dry
    request = dry.index("This is the exact request callbot would send:")
    assert dry[request + 1 : request + 6] == [
        f"POST https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{CALL}.json",
        "Authorization: Basic ***",
        "Content-Type: application/x-www-form-urlencoded",
        "",
        "Status=completed",
    ]

    server = subprocess.Popen(
        [str(installed.callbot), "serve", "--host", "127.0.0.1", "--port", str(unused_port)],
        cwd=empty_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        response = wait_healthy(f"http://127.0.0.1:{unused_port}", server, timeout=60)
        assert response.json() == {"status": "ok"}
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0]
    assert "Traceback" not in output, output
    for secret in secrets:
        assert secret not in output
    assert sorted(p.name for p in empty_dir.iterdir() if not p.name.startswith("callbot.db")) == []


@pytest.mark.timeout(600)
def test_the_procfile_runs_after_the_buildpack_steps(tmp_path: Path, fake_slack: FakeSlack, unused_port: int) -> None:
    """A Procfile platform (Heroku-style) builds the pushed source tree: its Python buildpack
    installs requirements.txt, then runs bin/post_compile, which installs callbot itself; the
    release and web processes are then the Procfile's lines, run by a shell."""
    app = tmp_path / "app"
    shutil.copytree(
        CHECKOUT,
        app,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "__pycache__", "*.db*", ".*_cache", "build", "dist", "*.egg-info"
        ),
    )
    platform = tmp_path / "platform"  # the buildpack's interpreter, on the PATH as `python`
    pip = ["-m", "pip", "--disable-pip-version-check", "--quiet"]
    _run([sys.executable, "-m", "venv", platform], env=_tool_env())
    _run(
        [platform / "bin" / "python", *pip, "install", "--require-hashes", "-r", app / "requirements.txt"],
        env=_tool_env(),
    )
    home = tmp_path / "home"
    home.mkdir()
    build_env = {**_tool_env(), "PATH": f"{platform / 'bin'}{os.pathsep}{SYSTEM_PATH}", "HOME": str(home)}
    assert not (platform / "bin" / "callbot").exists()
    _run([app / "bin" / "post_compile"], cwd=app, env=build_env)

    processes = dict(line.split(": ", 1) for line in (app / "Procfile").read_text().splitlines() if line.strip())
    assert processes == {"release": "callbot migrate", "web": "callbot serve"}
    env = {
        "PATH": f"{platform / 'bin'}{os.pathsep}{SYSTEM_PATH}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PORT": str(unused_port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": fake_slack.api_url,
    }
    release = _run(["sh", "-c", processes["release"]], cwd=app, env=env, timeout=60)
    assert release.stdout == "database schema is up to date\n"
    web = subprocess.Popen(
        ["sh", "-c", f"exec {processes['web']}"],
        cwd=app,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_healthy(f"http://127.0.0.1:{unused_port}", web, timeout=60).json() == {"status": "ok"}
    finally:
        web.terminate()
        output = web.communicate(timeout=20)[0]
    assert "Traceback" not in output, output
    assert SIGNING_SECRET not in output and BOT_TOKEN not in output


@pytest.fixture(scope="module")
def build_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("build-tool") / "venv"
    _run([sys.executable, "-m", "venv", venv], env=_tool_env())
    _run(
        [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "--quiet", "install", "build"],
        env=_tool_env(),
    )
    return venv / "bin" / "python"


@pytest.mark.timeout(600)
def test_python_m_build_makes_an_sdist_whose_wheel_holds_the_migrations(build_tool: Path, tmp_path: Path) -> None:
    """`python -m build`: the sdist, then the wheel built from the unpacked sdist (not the checkout)."""
    out = tmp_path / "dist"
    _run([build_tool, "-m", "build", "--outdir", out, CHECKOUT], env=_tool_env())
    version = bot.__version__
    sdist, wheel = out / f"callbot-{version}.tar.gz", out / f"callbot-{version}-py3-none-any.whl"

    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(f"callbot-{version}/") for name in archive.getnames()}
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".db")) or n.startswith(".venv")]
    assert {"pyproject.toml", "README.md", "alembic.ini", "Procfile", "requirements.txt", "Dockerfile"} <= names
    assert {"bot/cli.py", "migrations/env.py", "migrations/versions/0001_grants_and_audit.py"} <= names
    assert {"tests/conftest.py", "tests/test_wheel_install.py"} <= names

    with zipfile.ZipFile(wheel) as archive:
        built = set(archive.namelist())
    migrations = {
        "bot/" + p.relative_to(CHECKOUT).as_posix()
        for p in (CHECKOUT / "migrations").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert migrations <= built
    assert not [n for n in built if "__pycache__" in n or n.endswith(".pyc")]


# -- fast checks: no network, no venv ------------------------------------------------------------


def _pins() -> dict[str, str]:
    """requirements.txt as {normalised name: version}; every pin hashed (pip's --require-hashes)."""
    text = (CHECKOUT / "requirements.txt").read_text()
    pins: dict[str, str] = {}
    for entry in re.sub(r"\\\n", " ", text).splitlines():
        entry = entry.split("#", 1)[0].strip()
        if not entry:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", entry)
        assert match, f"requirements.txt: not a hashed == pin: {entry[:80]}"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_requirements_pin_every_runtime_dependency_within_its_range() -> None:
    """requirements.txt (./dev lock) cannot drift from pyproject.toml: each dependency is pinned,
    at a version its range admits, and so is each package its extras add (greenlet, psycopg-binary)."""
    project = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    environment = {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux"}
    for text in project["dependencies"]:
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} (pyproject.toml) is not pinned in requirements.txt: run ./dev lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.txt pins {name}=={pins[name]}, outside {requirement.specifier}: run ./dev lock"
        )
        for extra in requirement.extras:
            for dependency in (Requirement(r) for r in metadata.requires(requirement.name) or ()):
                marker = dependency.marker
                if marker and "extra" in str(marker) and marker.evaluate({**environment, "extra": extra}):
                    assert canonicalize_name(dependency.name) in pins, (
                        f"{dependency.name} ({requirement.name}[{extra}]) is not pinned in requirements.txt"
                    )
    test_tools = {canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["test"]}
    assert not test_tools & set(pins), "requirements.txt is the runtime only: no test tools"


def test_compose_file_runs_migrate_before_serve_on_postgres() -> None:
    compose = yaml.safe_load((CHECKOUT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["db"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["callbot", "migrate"]
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["bot"]["command"] == ["callbot", "serve"]
    assert services["bot"]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    for name in ("migrate", "bot"):
        assert "postgresql://callbot:callbot@db:5432/callbot" in services[name]["environment"]["DATABASE_URL"]
