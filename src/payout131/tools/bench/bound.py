"""The attainable bound: the most payouts a second any server could carry on this machine.

The ceilings (``ceilings.py`` and the HTTP ceiling) each measure one resource with the
whole machine to itself. A payout needs both at once, on the same CPUs, and the protocol
adds RSA work the ceilings do not do: the bank signs every webhook and verifies every
request, the partner verifies every webhook and signs the requests it cannot sign ahead
(the two-step confirm). So, per payout, no server can spend less CPU than

    floor = E × (CPU of one HTTP ceiling exchange) + C × (CPU of one storage ceiling commit)
          + signatures × (CPU of one RSA-2048 signature) + verifications × (CPU of one check)

with E exchanges and C commits as the ceilings count them (``ceilings.EXCHANGES``,
``ceilings.COMMITS``), every cost measured in the same run: the server's, the load
process's and the database's CPU over each ceiling, and the bank's own key signing in this
process. ``attainable = CPUs / floor`` is what a server that costs nothing beyond these
could carry, and ``attainable / ceiling`` the highest ``ratio_to_ceiling`` this machine
allows; the report prints it beside the ratio. The floor leaves out everything a real
payout adds (JSON, validation, the ledger's rows, the bigger bodies), so it is generous:
within the ceilings' own model (a payout needs C commits, each as dear as the storage
ceiling's), no server can measure a ratio above ``attainable_ratio`` here.

A server that groups commits pays a transaction's fixed cost once for many payouts, so it
may spend less than C commits' CPU on each; ``attainable_ratio_storage_free`` leaves
storage out altogether (only the exchanges and the RSA work), the bound for a server whose
storage and logic cost nothing at all.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from payout131.tools.bench.ceilings import COMMITS, EXCHANGES

__all__ = ["SIGNATURES", "VERIFICATIONS", "Crypto", "attainable", "crypto_costs"]

# RSA signatures a payout of the benchmark needs: the bank's, one per webhook, and the
# partner's per request whose body is new (the load signs each init body once per account,
# each confirm body as its webhook arrives).
SIGNATURES = {"single_request": 1, "two_step": 3, "status_read": 0}
# RSA verifications: the bank's of every request, the partner's of every webhook.
VERIFICATIONS = {"single_request": 2, "two_step": 4, "status_read": 1}

_BODY = b'{"type":"payment_finished","session":{"id":"ps_1","status":"accepted"}}' * 8


@dataclass(frozen=True, slots=True)
class Crypto:
    sign_us: float  # CPU of one RSASSA-PKCS1-v1_5 SHA-256 signature with the bank's key
    verify_us: float  # CPU of checking one


def crypto_costs(private_key_path: Path, repeat: int = 200) -> Crypto:
    """Sign and verify ``repeat`` times with the run's own bank key, on this thread's CPU."""
    key = serialization.load_pem_private_key(private_key_path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("the bank's key is not an RSA key")
    public = key.public_key()
    scheme, digest = padding.PKCS1v15(), hashes.SHA256()
    started = time.thread_time()
    for _ in range(repeat):
        signature = key.sign(_BODY, scheme, digest)
    signed = time.thread_time()
    for _ in range(repeat):
        public.verify(signature, _BODY, scheme, digest)
    checked = time.thread_time()
    per = 1e6 / repeat
    return Crypto(round((signed - started) * per, 2), round((checked - signed) * per, 2))


def attainable(scenario: str, ceilings: dict[str, Any], ceiling_per_s: float) -> dict[str, Any]:
    """The floor, the attainable rate and ratio of ``scenario`` (``_spread`` or not), from
    the costs ``ceilings`` holds (``cpu_us_per_exchange``, ``cpu_us_per_commit``,
    ``cpu_us_per_signature``, ``cpu_us_per_verification``)."""
    base = scenario.removesuffix("_spread")
    storage_us = COMMITS[base] * (ceilings.get("cpu_us_per_commit") or 0.0)
    rest_us = (
        EXCHANGES[base] * ceilings["cpu_us_per_exchange"]
        + SIGNATURES[base] * ceilings["cpu_us_per_signature"]
        + VERIFICATIONS[base] * ceilings["cpu_us_per_verification"]
    )
    cpus = len(os.sched_getaffinity(0))

    def rate(floor_us: float) -> float:
        return cpus * 1e6 / floor_us if floor_us > 0 else 0.0

    def ratio(floor_us: float) -> float | None:
        found = rate(floor_us)
        return round(found / ceiling_per_s, 3) if found and ceiling_per_s else None

    floor_us = storage_us + rest_us
    return {
        "floor_cpu_ms_per_payout": round(floor_us / 1000, 3),
        "attainable_payouts_per_s": round(rate(floor_us), 1),
        "attainable_ratio": ratio(floor_us),
        "attainable_ratio_storage_free": ratio(rest_us),
    }
