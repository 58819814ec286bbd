"""``payout131 serve --processes N``: several server processes on one port and one store.

Each process serves the API and runs its own background work; leases keep two of them from
running one payout step or sending one webhook event twice (docs/benchmarks.md).
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa

from partner import Partner, payout_body
from payout131.cli import main
from payout131.tools.bench.usage import children
from served import serve

PAYOUTS = 24


def test_two_processes_share_the_port_and_pay_each_payout_once(
    database_url: str, tmp_path: Path, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    if database_url.startswith("sqlite"):  # one writer at a time: more processes only wait
        env = {"PAYOUT131_HOME": str(tmp_path), "PAYOUT131_DATABASE_URL": database_url}
        refused = CliRunner().invoke(main, ["serve", "--processes", "2"], env=env)
        assert refused.exit_code == 2, refused.output
        assert "--processes needs PostgreSQL" in refused.output
        return
    with serve(tmp_path, database_url, "--processes", "2") as served:
        served.register("acme", partner_keys[0], wallet=PAYOUTS * 1_000, single_request=True)
        with httpx.Client(base_url=served.url, timeout=30) as http:
            partner = Partner(http, "acme", partner_keys[0])
            with ThreadPoolExecutor(8) as pool:
                started = list(
                    pool.map(
                        lambda _: partner.ok("session/init/payout", payout_body(1_000)),
                        range(PAYOUTS),
                    )
                )
            ids = [s["session"]["id"] for s in started]
            assert len(set(ids)) == PAYOUTS
            partner.error(  # the wallet is spent: every payout held its money once
                "session/init/payout", payout_body(1_000), 400, "insufficient_wallet_balance"
            )
            deadline = time.monotonic() + 60
            statuses: set[str] = set()
            while time.monotonic() < deadline:
                statuses = {
                    partner.ok("session/status", {"session_id": i})["session"]["status"]
                    for i in ids
                }
                if statuses == {"accepted"}:
                    break
                time.sleep(0.2)
            assert statuses == {"accepted"}
            supervisor = _serve_pid(served.log)
            assert len(children(supervisor)) >= 2  # uvicorn's two server processes
        assert served.ledger_problems() == []


def _serve_pid(log: Path) -> int:
    """The pid of ``payout131 serve`` (uvicorn's supervisor), from its start-up line."""
    for line in log.read_text().splitlines():
        found = re.search(r"Started parent process \[(\d+)\]", line)
        if found:
            return int(found.group(1))
    raise AssertionError(f"no supervisor line in {log.read_text()}")
