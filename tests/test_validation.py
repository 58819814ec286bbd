"""The bank-details validators against the DOMAIN.md test vectors, plus properties."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, reject
from hypothesis import strategies as st

from payout131.errors import InvalidRequest
from payout131.protocol.validation import (
    PAYOUT_PREFIXES,
    SETTLEMENT_PREFIXES,
    account_key_ok,
    check_amount,
    check_bik,
    check_full_name,
    check_inn,
    check_kpp,
    check_purpose,
    check_recipient_account,
    check_settlement_account,
    correspondent_key_ok,
    generate_account,
    mask_account,
    party_requirements,
    purpose_warnings,
)

FIELD = "payment_method.bank_account.ru.account"
PURPOSE = "Выплата по договору № 5015553111 от 01.02.2026. НДС не облагается"

biks = st.text(alphabet="0123456789", min_size=9, max_size=9)
sequences = st.integers(min_value=0, max_value=10**7 - 1)


def refused(call: object, *args: object) -> str:
    """The description of the InvalidRequest that ``call(*args)`` raises."""
    assert callable(call)
    with pytest.raises(InvalidRequest) as caught:
        call(*args)
    return caught.value.description


# ---- BIK --------------------------------------------------------------------------------


@pytest.mark.parametrize("bik", ["049205131", "044525225", "024501901", "017003983", "100070023"])
def test_bik_valid(bik: str) -> None:
    assert check_bik("bik", bik) == bik


@pytest.mark.parametrize("bik", ["04920513", "04920513X", "", "0492051311", "٠٤٩٢٠٥١٣١", 49205131])
def test_bik_invalid(bik: object) -> None:
    assert refused(check_bik, "ru.bik", bik).startswith("ru.bik: ")


# ---- control keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "bik"),
    [
        ("40702810500000000001", "044525974"),
        ("40817810400003869535", "044525974"),
        ("40702810300200000013", "049205131"),
        ("40702810200000000025", "049205131"),
        ("40602810700000000025", "049805746"),
    ],
)
def test_account_key_valid(account: str, bik: str) -> None:
    assert account_key_ok(bik, account)


@pytest.mark.parametrize(
    ("account", "bik"),
    [
        ("40817810100000270411", "044525971"),
        ("40702810500000000001", "044525225"),
        ("4070281050000000000", "044525974"),
        ("40702810500000000001", "04452597"),
    ],
)
def test_account_key_invalid(account: str, bik: str) -> None:
    assert not account_key_ok(bik, account)


def test_seed_example_key_digit_is_5() -> None:
    fixed = [d for d in "0123456789" if account_key_ok("044525971", f"40817810{d}00000270411")]
    assert fixed == ["5"]


@pytest.mark.parametrize(
    ("account", "bik"),
    [
        ("30101810822029205131", "049205131"),
        ("30101810145250000974", "044525974"),
        ("30101810745374525104", "044525104"),
    ],
)
def test_correspondent_key_valid(account: str, bik: str) -> None:
    assert correspondent_key_ok(bik, account)
    assert not account_key_ok(bik, account)  # the rule is picked by kind, not "either passes"


@pytest.mark.parametrize(
    ("account", "bik"),
    [
        ("30101810922029205131", "049205131"),  # key
        ("30101810822029205131", "049205132"),  # tail is not the BIK's last 3 digits
        ("40702810500000000001", "044525974"),  # not a correspondent account
    ],
)
def test_correspondent_key_invalid(account: str, bik: str) -> None:
    assert not correspondent_key_ok(bik, account)


# ---- recipient and settlement accounts ---------------------------------------------------


@pytest.mark.parametrize(
    ("account", "bik"),
    [
        ("40702810500000000001", "044525974"),
        ("40817810400003869535", "044525974"),
        ("40702810300200000013", "049205131"),
        ("40702810200000000025", "049205131"),
    ],
)
def test_recipient_account_valid(account: str, bik: str) -> None:
    assert check_recipient_account(FIELD, bik, account) == account


def test_recipient_account_seed_example_names_key_and_bik() -> None:
    message = refused(check_recipient_account, FIELD, "044525971", "40817810100000270411")
    assert message == f"{FIELD}: 40817810100000270411 fails the control key for BIK 044525971"


def test_recipient_account_wrong_bank_fails_key() -> None:
    message = refused(check_recipient_account, FIELD, "044525225", "40702810500000000001")
    assert "control key" in message


@pytest.mark.parametrize(
    "value", ["4070281050000000000", "407028105000000000011", "4070281050000000000a"]
)
def test_recipient_account_needs_20_digits(value: str) -> None:
    assert "20 digits" in refused(check_recipient_account, FIELD, "044525974", value)


def test_recipient_account_not_a_string() -> None:
    assert refused(check_recipient_account, FIELD, "044525974", 40702810500000000001).startswith(
        f"{FIELD}: must be a string"
    )


def test_recipient_account_prefix_refused_even_with_good_key() -> None:
    account = "40602810700000000025"
    assert account_key_ok("049805746", account)
    message = refused(check_recipient_account, FIELD, "049805746", account)
    assert "prefix" in message
    assert "control key" not in message


def test_recipient_prefixes_are_the_domain_list() -> None:
    deposits = [f"4230{n}810" for n in range(1, 8)]
    expected = {"40817810", *deposits, "40802810", "40702810", "40701810", "40502810"}
    assert set(PAYOUT_PREFIXES) == expected


def test_settlement_account() -> None:
    assert check_settlement_account(FIELD, "049205131", "40702810200000000025")
    individual = generate_account("049205131", prefix="40817810", sequence=1)
    assert "prefix" in refused(check_settlement_account, FIELD, "049205131", individual)
    assert set(SETTLEMENT_PREFIXES) == {"40702810", "40701810", "40502810", "40802810"}


def test_settlement_account_key() -> None:
    message = refused(check_settlement_account, FIELD, "049205131", "40702810300200000014")
    assert message == f"{FIELD}: 40702810300200000014 fails the control key for BIK 049205131"


@given(bik=biks, prefix=st.sampled_from(PAYOUT_PREFIXES), sequence=st.one_of(st.none(), sequences))
def test_generated_accounts_pass(bik: str, prefix: str, sequence: int | None) -> None:
    account = generate_account(bik, prefix, sequence)
    assert len(account) == 20
    assert account.startswith(prefix)
    assert account[9:13] == "0000"
    assert sequence is None or account.endswith(f"{sequence:07d}")
    assert account_key_ok(bik, account)
    assert check_recipient_account(FIELD, bik, account) == account


@given(
    bik=biks,
    sequence=sequences,
    position=st.integers(min_value=0, max_value=19),
    shift=st.integers(min_value=1, max_value=9),
)
def test_any_single_digit_change_breaks_the_key(
    bik: str, sequence: int, position: int, shift: int
) -> None:
    account = generate_account(bik, sequence=sequence)
    digit = str((int(account[position]) + shift) % 10)
    changed = account[:position] + digit + account[position + 1 :]
    assert not account_key_ok(bik, changed)


@given(bik=biks, sequence=sequences, shift=st.integers(min_value=1, max_value=9))
def test_changing_the_bank_tail_breaks_the_key(bik: str, sequence: int, shift: int) -> None:
    account = generate_account(bik, sequence=sequence)
    other = bik[:8] + str((int(bik[8]) + shift) % 10)
    assert not account_key_ok(other, account)


def test_generate_account_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="9-digit BIK"):
        generate_account("04452597")
    with pytest.raises(ValueError, match="sequence"):
        generate_account("044525974", sequence=10**7)


def test_mask_account() -> None:
    assert mask_account("40702810200000000025") == "40702***0025"
    assert mask_account("12345") == "***"


# ---- party requirements, INN, KPP ---------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        ("40802810000000000001", (12, False)),
        ("40702810000000000001", (10, True)),
        ("40701810000000000001", (10, True)),
        ("40502810000000000001", (10, True)),
        ("40817810000000000001", (None, False)),
        ("42305810000000000001", (None, False)),
    ],
)
def test_party_requirements(account: str, expected: tuple[int | None, bool]) -> None:
    assert party_requirements(account) == expected


@pytest.mark.parametrize("inn", ["7707083893", "3664069397", "1234567894", "123456789047"])
def test_inn_valid(inn: str) -> None:
    assert check_inn("inn", inn) == inn
    assert check_inn("inn", inn, len(inn)) == inn


@pytest.mark.parametrize(
    ("inn", "rule"),
    [
        ("7707083894", "check digit"),
        ("1234567895", "check digit"),
        ("123456789037", "check digit"),
        ("0012345678", "00"),
        ("770708389", "10 or 12 digits"),
        ("77070838931", "10 or 12 digits"),
        ("770708389X", "10 or 12 digits"),
    ],
)
def test_inn_invalid(inn: str, rule: str) -> None:
    message = refused(check_inn, "participant_details.recipient.inn", inn)
    assert message.startswith("participant_details.recipient.inn: ")
    assert rule in message


def test_inn_length_required_by_account() -> None:
    assert "12 digits" in refused(check_inn, "inn", "7707083893", 12)
    assert "10 digits" in refused(check_inn, "inn", "123456789047", 10)
    assert "must be a string" in refused(check_inn, "inn", 7707083893)


def _inn_digit(digits: str, weights: tuple[int, ...]) -> str:
    return str(sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11 % 10)


@given(st.text(alphabet="0123456789", min_size=10, max_size=10))
def test_inn_12_with_spec_check_digits_passes(body: str) -> None:
    assume(not body.startswith("00"))
    d11 = _inn_digit(body, (7, 2, 4, 10, 3, 5, 9, 4, 6, 8))
    d12 = _inn_digit(body + d11, (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8))
    assert check_inn("inn", body + d11 + d12) == body + d11 + d12
    wrong = str((int(d12) + 1) % 10)
    assert "check digit" in refused(check_inn, "inn", body + d11 + wrong)


@pytest.mark.parametrize("kpp", ["773601001", "616401001", "7736AB001"])
def test_kpp_valid(kpp: str) -> None:
    assert check_kpp("kpp", kpp) == kpp


@pytest.mark.parametrize("kpp", ["7736ab001", "77360100", "A73601001", "7736010011", 773601001])
def test_kpp_invalid(kpp: object) -> None:
    assert refused(check_kpp, "participant_details.recipient.kpp", kpp).startswith(
        "participant_details.recipient.kpp: "
    )


# ---- purpose ----------------------------------------------------------------------------


def test_purpose_valid() -> None:
    assert check_purpose("description", PURPOSE) == PURPOSE
    assert purpose_warnings(PURPOSE) == []


def test_purpose_normalises_white_space() -> None:
    messy = "\t Выплата\u00a0по\n\nдоговору\u2009№ 5\u3000 "
    assert check_purpose("description", messy) == "Выплата по договору № 5"


def test_purpose_allows_yo_and_all_printable_ascii() -> None:
    ascii_text = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "?!")
    text = "Ёлки ёжик " + ascii_text.strip()
    assert check_purpose("description", text) == text


def test_purpose_length() -> None:
    assert check_purpose("d", "я" * 210) == "я" * 210
    assert "211 characters" in refused(check_purpose, "d", "я" * 211)
    assert check_purpose("d", "a" * 140, 140) == "a" * 140
    assert "at most 140" in refused(check_purpose, "d", "a" * 141, 140)


@pytest.mark.parametrize("empty", ["", "   ", "\n\t\u00a0"])
def test_purpose_empty(empty: str) -> None:
    assert refused(check_purpose, "description", empty) == "description: must not be empty"


@pytest.mark.parametrize(
    ("text", "shown", "position"),
    [
        ("Выплата 😀", "U+1F600", 9),
        ("Выплата!", "'!'", 8),
        ("Why?", "'?'", 4),
        ("Café", "U+00E9", 4),
        ("Україна", "U+0457", 5),
        ("a\u200bb", "U+200B", 2),
        ("a\x7fb", "U+007F", 2),
        ("a\x00b", "U+0000", 2),
    ],
)
def test_purpose_reports_first_offending_character(text: str, shown: str, position: int) -> None:
    message = refused(check_purpose, "description", text)
    assert message.startswith("description: ")
    assert shown in message
    assert f"position {position} " in message


def test_purpose_not_a_string() -> None:
    assert refused(check_purpose, "description", 5) == "description: must be a string"


@pytest.mark.parametrize(
    "text", ["Выплата, НДС не облагается", "Payout, VAT exempt", "без ндс", "(НДС 20%)"]
)
def test_purpose_with_vat_has_no_warning(text: str) -> None:
    assert purpose_warnings(text) == []


@pytest.mark.parametrize("text", ["Выплата по договору № 5", "PRIVATE payout", "АНДСК"])
def test_purpose_without_vat_warns(text: str) -> None:
    (warning,) = purpose_warnings(text)
    assert "VAT" in warning


purpose_text = st.text(
    alphabet=st.sampled_from("ab Zz09.,№-ЁёАяЖ\t\n\u00a0\u2003\u202f"), min_size=1, max_size=250
)


@given(purpose_text)
def test_purpose_normalisation_is_idempotent(text: str) -> None:
    try:
        once = check_purpose("d", text)
    except InvalidRequest:
        reject()
    assert check_purpose("d", once) == once
    assert "  " not in once
    assert once == once.strip()


# ---- amount, full name ------------------------------------------------------------------


@pytest.mark.parametrize("amount", [1, 10000, 2**63 - 1])
def test_amount_valid(amount: int) -> None:
    assert check_amount("amount_details.amount", amount) == amount


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (1.5, "not 1.5"),
        (100.0, "not 100.0"),
        ("100", "not the string"),
        (True, "not a boolean"),
        (False, "not a boolean"),
        (0, "greater than zero"),
        (-5, "greater than zero"),
        (2**63, "too large"),
        (None, "integer"),
        ([1], "integer"),
    ],
)
def test_amount_invalid(value: object, rule: str) -> None:
    message = refused(check_amount, "amount_details.amount", value)
    assert message.startswith("amount_details.amount: ")
    assert rule in message


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_every_positive_int64_is_an_amount(amount: int) -> None:
    assert check_amount("a", amount) == amount


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_no_float_is_an_amount(amount: float) -> None:
    assert "minor units" in refused(check_amount, "a", amount)


def test_full_name() -> None:
    assert check_full_name("ru.full_name", "  Иванов Иван Иванович ") == "Иванов Иван Иванович"
    assert check_full_name("n", "x" * 255) == "x" * 255
    assert "256 characters" in refused(check_full_name, "n", "x" * 256)
    assert refused(check_full_name, "ru.full_name", " \t") == "ru.full_name: must not be empty"
    assert refused(check_full_name, "n", None) == "n: must be a string"
