"""The package as an operator installs it: a wheel built from this tree installs with pip
into a fresh virtual environment (no checkout), and there ``payout131 init --demo``,
``serve`` and ``demo`` run (docs/operations.md, "Installing")."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import httpx

from payout131.cli import main
from served import _wait_until_up, free_port, stop

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


def test_the_wheel_installs_and_runs_in_a_fresh_environment(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    assert uv is not None, "uv is installed by scripts/install"
    _run(uv, "build", "--wheel", "--out-dir", tmp_path / "dist", ROOT)
    (wheel,) = (tmp_path / "dist").glob("payout131-*.whl")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    _run(uv, "pip", "install", "--quiet", "--python", venv / "bin" / "python", wheel)
    payout131 = venv / "bin" / "payout131"
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PAYOUT131_HOME": str(tmp_path / "home"),
    }
    away = tmp_path  # run outside the checkout: nothing of it is at hand
    assert "demo project" in _run(payout131, "init", "--demo", env=env, cwd=away)
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [payout131, "serve", "--port", str(port)],
        env=env,
        cwd=away,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url, server, tmp_path / "serve.log")  # or fails showing its log
        assert httpx.get(f"{url}/widget/demo").status_code == 200  # the packaged files
        assert "operator add" in httpx.get(f"{url}/console/").text  # the console's templates
        assert httpx.get(f"{url}/console/static/console.css").status_code == 200
        assert httpx.get(f"{url}/openapi.json").json()["openapi"] == "3.1.0"
    finally:
        stop(server, 30)
        log.close()
    demo = _run(payout131, "demo", env=env, cwd=away)
    assert "single request" in demo.lower()


def test_the_deploy_files_name_commands_that_exist() -> None:
    """deploy/ cannot be run here (no systemd, no container runtime): what it runs must at
    least be commands and options payout131 has."""
    unit = (ROOT / "deploy" / "payout131.service").read_text()
    docker = (ROOT / "deploy" / "Dockerfile").read_text()
    lines = [
        line.split("=", 1)[1].split("payout131", 2)[-1]
        for line in unit.splitlines()
        if line.startswith(("ExecStart=", "ExecStartPre="))
    ]
    lines += re.findall(r"payout131 ([a-z][^&\"]*)", docker.split("CMD", 1)[1])
    assert len(lines) >= 4
    for line in lines:
        words = shlex.split(line)
        command = main.get_command(click.Context(main), words[0])
        assert command is not None, line
        command.make_context(words[0], words[1:])  # the options exist and parse
