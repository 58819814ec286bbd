"""The Faster Payments (SBP) member directory: ``GET /api/v1/fps/banks`` on a running server
(signed as the bank's PHP SDK signs it, and over no body), the SDK's ``fps_banks`` and
``payout131 fps import|list``, on both engines."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa

from payout131.cli import main
from payout131.client import Client, UnexpectedResponseError, signing
from payout131.directory import fps
from served import serve


def _get(url: str, key: rsa.RSAPrivateKey, body: bytes, project: str = "acme") -> httpx.Response:
    headers = {"X-PARTNER-PROJECT": project, "X-PARTNER-SIGN": signing.sign(key, body)}
    return httpx.request("GET", f"{url}/api/v1/fps/banks", content=body, headers=headers)


def test_the_members_are_listed_to_a_signed_get(
    tmp_path: Path, database_url: str, partner_keys: list[rsa.RSAPrivateKey]
) -> None:
    key = partner_keys[0]
    with serve(tmp_path, database_url) as served:
        pem = served.register("acme", key)
        with Client(base_url=served.url, project="acme", private_key=pem.read_bytes()) as bank:
            banks = bank.fps_banks()
        assert len(banks) == len(fps.load_snapshot()) == 226
        tbank = next(b for b in banks if b.id == "100000000004")
        assert (tbank.ru_name, tbank.eng_name) == ("Т-Банк", "TINKOFF")
        assert [b.id for b in banks] == sorted(b.id for b in banks)
        for body in (b"[]", b""):  # the PHP SDK's body, and none
            answer = _get(served.url, key, body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["banks"][2] == {
                "id": "100000000004",
                "eng_name": "TINKOFF",
                "ru_name": "Т-Банк",
            }
        forged = httpx.request(
            "GET",
            f"{served.url}/api/v1/fps/banks",
            content=b"[]",
            headers={"X-PARTNER-PROJECT": "acme", "X-PARTNER-SIGN": signing.sign(key, b"{}")},
        )
        assert forged.status_code == 401
        assert forged.json()["error"]["code"] == "authentication_error"
        unknown = _get(served.url, key, b"[]", project="nobody")
        assert unknown.json()["error"]["code"] == "identification_error"
        garbage = _get(served.url, key, b"[1,")
        assert garbage.status_code == 400
        assert garbage.json()["error"]["code"] == "invalid_request"
        for method in ("POST", "PUT", "DELETE"):
            refused = httpx.request(method, f"{served.url}/api/v1/fps/banks", content=b"[]")
            assert refused.status_code == 405
            assert refused.headers["allow"] == "GET, HEAD"
            assert refused.json()["error"]["description"] == f"{method} /api/v1/fps/banks: use GET"
        head = httpx.head(
            f"{served.url}/api/v1/fps/banks",
            headers={"X-PARTNER-PROJECT": "acme", "X-PARTNER-SIGN": signing.sign(key, b"")},
        )
        assert head.status_code == 200
        assert head.content == b""


def test_the_operator_imports_a_newer_member_list(tmp_path: Path, database_url: str) -> None:
    with serve(tmp_path, database_url) as served:
        env = served.env

        def cli(*args: str, code: int = 0) -> str:
            result = CliRunner().invoke(main, list(args), env=env)
            assert result.exit_code == code, result.output
            return result.output

        assert len(json.loads(cli("fps", "list", "--json"))) == 226  # the packaged snapshot
        newer = tmp_path / "members.csv"
        newer.write_text(
            "member_id,ru_name,eng_name,bik,logo_url\n"
            "100000000004,Т-Банк,TINKOFF,044525974,\n"
            "100000000111,Сбербанк,Sberbank,,\n",
            encoding="utf-8",
        )
        assert cli("fps", "import", str(newer)) == f"imported 2 SBP members from {newer}\n"
        listed = json.loads(cli("fps", "list", "--json"))
        assert [(m["id"], m["bik"]) for m in listed] == [
            ("100000000004", "044525974"),
            ("100000000111", None),
        ]
        assert "100000000111  Сбербанк  (Sberbank)" in cli("fps", "list")
        for text, why in (
            ("member_id,ru_name\n1,a\n", "line 1: the header lacks eng_name"),
            ("member_id,ru_name,eng_name\n12345,a,b\n", "line 2: member_id must be 12 digits"),
            ("member_id,ru_name,eng_name,bik\n100000000004,a,b,12\n", "bik must be 9 digits"),
            ("member_id,ru_name,eng_name\n100000000004,,b\n", "line 2: ru_name is empty"),
            ("member_id,ru_name,eng_name\n", "lists no member"),
            ("member_id,ru_name,eng_name\n100000000004,Банк, АО,b\n", "more fields than"),
        ):
            bad = tmp_path / "bad.csv"
            bad.write_text(text, encoding="utf-8")
            lines = cli("fps", "import", str(bad), code=1).strip().splitlines()
            assert len(lines) == 1
            assert lines[0].startswith(f"Error: {bad}: ")
            assert why in lines[0], (text, lines)
        assert len(json.loads(cli("fps", "list", "--json"))) == 2  # a bad file changes nothing


@pytest.mark.parametrize("member_id", ["1000000000041", "10000000000a", "１00000000004"])
def test_a_member_id_is_twelve_ascii_digits(member_id: str) -> None:
    with pytest.raises(ValueError, match="member_id must be 12 digits"):
        fps.parse_csv(f"member_id,ru_name,eng_name\n{member_id},a,b\n".encode())


@pytest.mark.parametrize("answer", [{"status": "ok"}, {"status": "ok", "banks": None}])
def test_the_sdk_names_an_answer_without_its_banks(answer: dict[str, object]) -> None:
    seen: list[httpx.Request] = []

    def bank(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answer)

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with (
        Client(
            base_url="http://bank.test",
            project="acme",
            private_key=key,
            transport=httpx.MockTransport(bank),
        ) as client,
        pytest.raises(UnexpectedResponseError, match="banks: expected an array"),
    ):
        client.fps_banks()
    (request,) = seen  # a GET with the body [], signed over it, as the PHP SDK sends it
    assert (request.method, request.content) == ("GET", b"[]")
    assert signing.verify(key.public_key(), b"[]", request.headers["X-PARTNER-SIGN"])
