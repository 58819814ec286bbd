"""``payout131 demo`` runs every seed flow and leaves nothing behind.

The demo always runs on SQLite in a temporary home (that is what it is for), so this test is
not parametrized by engine. Webhook delivery runs inside ``payout131 serve``, so the demo's
output must show each flow's webhooks; the demo can also follow ``session/status`` when no
webhook comes, but that fallback would fail this test.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from served import PAYOUT131


@pytest.mark.slow
def test_the_demo_walks_the_seed_flows_and_leaves_nothing_running(tmp_path: Path) -> None:
    result = subprocess.run(
        [PAYOUT131, "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr

    outcomes = out[out.index("outcomes:") :]
    assert "two-step with confirm: succeeded" in outcomes
    assert "cancel: cancelled (session_cancelled_by_partner)" in outcomes
    assert "token: succeeded" in outcomes
    assert "single request: succeeded" in outcomes

    # every request, webhook and balance is printed
    for request in ("session/create/rko", "session/start/payout/rko", "session/confirm"):
        assert f"→ demo v1/{request} " in out
    assert "→ demo v1/session/cancel " in out
    assert "→ demo v1/tokenize " in out
    assert "→ demo-instant v1/session/init/payout " in out
    assert out.count("⇐ webhook ready_to_confirm") == 3
    assert out.count("⇐ webhook payment_finished") == 4
    assert "confirm_information: " in out
    assert "following session/status" not in out  # the webhooks came
    assert "balance: wallet 1000000.00 RUB; account " in out
    assert "balance: wallet 999750.00 RUB" in out  # the single-request project paid 250

    # nothing left running, nothing left on disk
    pid = int(re.search(r"\(pid (\d+),", out).group(1))  # type: ignore[union-attr]
    assert not Path(f"/proc/{pid}").exists()
    home = re.search(r"home: (\S+) \(temporary\)", out).group(1)  # type: ignore[union-attr]
    assert not Path(home).exists()
    assert "stopped the webhook receiver" in out
    server = re.search(r"payout131 serve on (\S+) ", out).group(1)  # type: ignore[union-attr]
    receiver = re.search(r"webhook receiver: (\S+) ", out).group(1)  # type: ignore[union-attr]
    for url in (f"{server}/health", receiver):
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=2)
    assert not _processes_mentioning(home)


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line or environment names ``text``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in seen:
            found.append(int(proc.name))
    return found
