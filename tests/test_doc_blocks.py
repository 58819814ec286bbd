"""Every code block in README.md and docs/*.md is run, checked, or says why not.

A reader follows the docs to the letter, so the test does too:

- ``python`` and ``sh`` blocks run, in the order of their document, in one directory per
  document: ``payout131 init --demo`` was run there (``./.payout131``, the demo project),
  ``partner.pem`` is the key of a funded project ``my_project`` (the SDK examples' names),
  ``bank131.pub.pem`` is the bank's public key, and ``body.json`` with ``$SIGNATURE`` is a
  webhook as received. A server is started for the documents that call one; the addresses
  the docs use for it (``http://127.0.0.1:8131``, ``https://demo.bank131.ru``) are replaced
  by its own. A block passes when it exits 0 (and no answer it prints is an error).
- ``json`` blocks parse (a list of members counts, as in ``"refunds": [...]``); ``csv``
  blocks are partner batch sheets, read by the CLI's own reader.
- Other blocks pass when every line is a ``payout131`` command (or, with ``$ ``, a
  transcript): each command and option must exist, and a concrete line must parse.
- Anything else needs ``<!-- not run: why -->`` on the line before its fence.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131.cli import main
from payout131.cli.payout_sheet import read_sheet
from payout131.client import signing
from payout131.directory.bik import BikDirectory, load_snapshot
from payout131.tools.chaos.processes import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(
    r"(?:^<!-- not run: (?P<why>[^>]*?) -->\n)?^```(?P<lang>\S*)\n(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
SERVER_ADDRESSES = ("http://127.0.0.1:8131", "https://demo.bank131.ru")
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Block:
    document: Path
    line: int
    lang: str
    code: str
    why: str | None

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def blocks(document: Path) -> list[Block]:
    text = document.read_text()
    return [
        Block(
            document,
            text.count("\n", 0, match.start("lang")) + 1,
            match["lang"],
            match["code"],
            match["why"],
        )
        for match in FENCE.finditer(text)
    ]


ALL_BLOCKS = [block for document in DOCUMENTS for block in blocks(document)]
RUN = ("python", "sh")


# -- what is checked without running ---------------------------------------------------------


def test_every_fence_is_found() -> None:
    for document in DOCUMENTS:
        fences = sum(1 for line in document.read_text().splitlines() if line.startswith("```"))
        assert fences == 2 * len(blocks(document)), f"{document.name}: an unclosed fence"


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.where)
def test_every_block_is_checked_or_says_why_not(block: Block) -> None:
    if block.why is not None:
        assert len(block.why.strip()) > 10, f"{block.where}: say why it is not run"
        return
    if block.lang in RUN:
        return  # run below, with its document
    if block.lang == "json":
        _parse_json(block)
    elif block.lang == "csv":
        _read_sheet(block)
    else:
        commands = _command_lines(block)
        assert commands, f"{block.where}: run it, make it commands, or mark it <!-- not run -->"
        for line in commands:
            _check_command(block, line)


def _parse_json(block: Block) -> None:
    try:
        json.loads(block.code)
    except json.JSONDecodeError:
        try:
            json.loads("{" + block.code + "}")
        except json.JSONDecodeError as exc:
            pytest.fail(f"{block.where}: not JSON: {exc}")


def _read_sheet(block: Block) -> None:
    directory = BikDirectory(load_snapshot())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "sheet.csv")
        path.write_text(block.code, encoding="utf-8")
        sheet = read_sheet(path, directory)  # raises SheetError naming each problem
    assert sheet.rows, f"{block.where}: an empty sheet"


def _command_lines(block: Block) -> list[str]:
    """The ``payout131`` commands of a block, or [] if it holds anything else."""
    lines = [line for line in block.code.splitlines() if line.strip()]
    transcript = any(line.startswith("$ ") for line in lines)
    commands = []
    for line in lines:
        if transcript and not line.startswith("$ "):
            continue  # a transcript's output
        text = line.removeprefix("$ ")
        if text.lstrip().startswith("#"):
            continue  # a comment continued from the line above
        if not text.startswith(("payout131 ", ".venv/bin/payout131 ", "scripts/chaos")):
            return []
        commands.append(text)
    return commands


def _check_command(block: Block, line: str) -> None:
    text = line.split(" #", 1)[0]  # a comment
    text = re.split(r"\s(?:>|\||&&)\s", text)[0]  # a redirection or a pipe
    words = shlex.split(text)
    if words[0] == "scripts/chaos":
        words = ["payout131", "chaos", *words[1:]]
    words = words[1:]
    synopsis = any(mark in text for mark in ("[", "|", "…", "<"))
    command: click.Command = main
    path = ["payout131"]
    options: set[str] = set()
    while isinstance(command, click.Group):
        options |= _flags(command)
        while words and words[0].startswith("-"):  # a group's own options
            words = words[2:] if _takes_value(command, words[0]) else words[1:]
        assert words, f"{block.where}: {line!r} names no command of {' '.join(path)}"
        sub = command.get_command(click.Context(command), words[0])
        assert sub is not None, f"{block.where}: no command {' '.join([*path, words[0]])}"
        path.append(words.pop(0))
        command = sub
    options |= _flags(command)
    if synopsis:  # only the names: the values are placeholders
        for word in re.findall(r"--[a-z][a-z0-9-]*", text):
            assert word in options, f"{block.where}: {' '.join(path)} has no option {word}"
        return
    try:
        command.make_context(" ".join(path), list(words))
    except click.UsageError as exc:
        pytest.fail(f"{block.where}: {line!r}: {exc.format_message()}")


def _flags(command: click.Command) -> set[str]:
    return {flag for param in command.params for flag in param.opts + param.secondary_opts}


def _takes_value(command: click.Command, flag: str) -> bool:
    for param in command.params:
        if flag in param.opts and isinstance(param, click.Option):
            return not param.is_flag
    return False


# -- what is run -----------------------------------------------------------------------------


RUNNABLE = [d for d in DOCUMENTS if any(b.lang in RUN and b.why is None for b in blocks(d))]


@dataclass
class Scene:
    """A directory as a reader's, with the server the document calls, if it calls one."""

    folder: Path
    env: dict[str, str]
    server: ServerProcess | None = None

    def substitute(self, code: str) -> str:
        if self.server is None:
            return code
        for address in SERVER_ADDRESSES:
            code = code.replace(address, self.server.url)
        return code


@pytest.fixture
def scene(tmp_path: Path, partner_keys: list[rsa.RSAPrivateKey]) -> Iterator[Scene]:
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PAYOUT131_HOME": str(tmp_path / ".payout131"),
        "LANG": "C.UTF-8",
    }
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    _cli(env, tmp_path, "init", "--demo")
    key = partner_keys[0]
    (tmp_path / "partner.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "partner.pub.pem").write_bytes(signing.public_key_pem(key))
    _cli(env, tmp_path, "project", "add", "my_project", "--public-key", "partner.pub.pem")
    _cli(env, tmp_path, "wallet", "topup", "my_project", "100000")
    bank_public = tmp_path / ".payout131" / "bank-public.pem"
    shutil.copy(bank_public, tmp_path / "bank131.pub.pem")
    body = b'{"type":"payment_finished","session":{"id":"ps_1","status":"accepted"}}'
    (tmp_path / "body.json").write_bytes(body)
    bank_private = signing.load_private_key((tmp_path / ".payout131/bank-private.pem").read_bytes())
    env["SIGNATURE"] = signing.sign(bank_private, body)
    made = Scene(tmp_path, env)
    yield made
    if made.server is not None:
        made.server.stop()


def _cli(env: dict[str, str], folder: Path, *args: str) -> None:
    done = subprocess.run(
        [str(BIN / "payout131"), *args], env=env, cwd=folder, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


@pytest.mark.parametrize("document", RUNNABLE, ids=lambda d: d.name)
def test_the_blocks_of_a_document_run_in_order(document: Path, scene: Scene) -> None:
    runnable = [b for b in blocks(document) if b.lang in RUN and b.why is None]
    if any(address in b.code for b in runnable for address in SERVER_ADDRESSES):
        scene.server = ServerProcess(scene.env, scene.folder / "serve.log")
        scene.server.start()
    for block in runnable:
        code = scene.substitute(block.code) + AFTERWARDS.get(_afterwards_key(block), "")
        if block.lang == "python":
            argv = [sys.executable, "-c", code]
        else:
            argv = ["bash", "-euo", "pipefail", "-c", code]
        done = subprocess.run(
            argv, env=scene.env, cwd=scene.folder, capture_output=True, text=True, timeout=120
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{block.where} failed:\n{output}"
        assert '"status":"error"' not in done.stdout.replace(" ", ""), f"{block.where}: {output}"


def _afterwards_key(block: Block) -> str:
    return next((key for key in AFTERWARDS if key in block.code), "")


# What the test appends to a block that only defines something, to see it work.
AFTERWARDS = {
    # docs/sandbox.md: the partner's pytest test, run as pytest would run it
    "def test_a_returned_payout_is_refunded_three_days_later": """
test_a_returned_payout_is_refunded_three_days_later()
""",
    # docs/sdk.md: the receiver answers a signed webhook at its path, with or without the
    # trailing slash (a Starlette Mount would answer 307, which the bank does not follow)
    "receiver.routes(": """
import httpx as _httpx, anyio as _anyio
from payout131.client import signing as _signing
_key = _signing.load_private_key(open(".payout131/bank-private.pem", "rb").read())

async def _check() -> None:
    transport = _httpx.ASGITransport(app)
    async with _httpx.AsyncClient(transport=transport, base_url="http://partner") as client:
        for n, path in enumerate(["/bank131/webhook", "/bank131/webhook/"]):
            body = ('{"type":"payment_finished","session":{"id":"ps_%d","status":"accepted"}}'
                    % n).encode()
            answer = await client.post(path, content=body,
                                       headers={"X-PARTNER-SIGN": _signing.sign(_key, body)})
            assert answer.status_code == 200, (path, answer.status_code, answer.text)

_anyio.run(_check)
""",
}


FREE_TEXT = {"PAYOUT131_HOME", "PAYOUT131_DATABASE_URL", "PAYOUT131_VAULT_KEY"}
FREE_TEXT |= {"PAYOUT131_WIDGET_DEMO_PROJECT"}


def test_every_setting_is_documented_with_its_bounds() -> None:
    """Each variable has a line in a table of README.md or docs/*.md that gives its bounds
    in the words its error message uses."""
    from payout131.settings import VARIABLES

    lines = [line for d in DOCUMENTS for line in d.read_text().splitlines()]
    for variable in VARIABLES:
        named = [line for line in lines if f"`{variable.name}" in line]
        assert named, f"README.md or docs/*.md should document {variable.name}"
        if variable.name not in FREE_TEXT:
            assert any(variable.bounds in line for line in named), (
                f"{variable.name}: say its bounds, {variable.bounds!r}"
            )
