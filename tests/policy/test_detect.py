"""The personal-data detectors: true and false positives of each, the checksums, custom patterns' shape."""

from __future__ import annotations

import pytest

from gateway.policy.detect import BUILTIN, Detected, Detection, Scanned, fired
from gateway.policy.detect_checks import card_ok, iban_ok, luhn_ok, ssn_ok
from gateway.policy.detect_custom import MAX_MATCH_CHARS, UnsafePattern, compile_custom


def found(detector: str, text: str) -> bool:
    return BUILTIN[detector](Scanned(text))


@pytest.mark.parametrize(
    "text",
    ["write to jane.doe@example.com today", "foo+tag@mail.bar.co.uk", "<a.b_c-d@sub.example.org>", "x@y.io"],
)
def test_email_found(text: str) -> None:
    assert found("email", text)


@pytest.mark.parametrize(
    "text",
    ["ping @handle on chat", "user@localhost", "a@b.c", "decorator @property", "x @ y.com", "email me", "@@@"],
)
def test_email_not_found(text: str) -> None:
    assert not found("email", text)


VALID_CARDS = [
    "4111 1111 1111 1111",  # Visa, grouped by spaces
    "4111-1111-1111-1111",  # Visa, grouped by hyphens
    "4012888888881881",  # Visa
    "5555555555554444",  # Mastercard
    "2223003122003222",  # Mastercard 2-series
    "378282246310005",  # American Express
    "6011111111111117",  # Discover
    "3530111333300000",  # JCB
]


@pytest.mark.parametrize("number", VALID_CARDS)
def test_card_found_with_a_valid_luhn(number: str) -> None:
    assert found("card", f"my card is {number}, expiry 12/27")


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # Luhn fails
        "5555555555554445",  # Luhn fails
        "order 1234567812345670",  # Luhn passes, but no card brand starts with 12
        "0000000000000000",  # Luhn passes, no brand
        "pi is 3.14159265358979323",  # digits after a decimal point
        "41111111111111111111111",  # too long: 23 digits
        "4111 1111 1111",  # too short
        "2024-01-15 and 2024-02-15",
        "tracking 9400111899223857260000",
    ],
)
def test_card_not_found(text: str) -> None:
    assert not found("card", text)


def test_luhn() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert card_ok("4111111111111111") and not card_ok("4111111111111121")


@pytest.mark.parametrize(
    "iban",
    [
        "DE89 3704 0044 0532 0130 00",  # Germany, grouped
        "GB82WEST12345698765432",  # United Kingdom
        "FR1420041010050500013M02606",  # France
        "NL91ABNA0417164300",  # Netherlands
        "ES9121000418450200051332",  # Spain
        "CH9300762011623852957",  # Switzerland
        "NO9386011117947",  # Norway: the shortest
        "MT84MALT011000012345MTLCAST001S",  # Malta: letters in the account
    ],
)
def test_iban_found_with_a_valid_checksum(iban: str) -> None:
    assert found("iban", f"please pay to {iban} by Friday")


def test_iban_followed_by_a_word_in_capitals() -> None:
    assert found("iban", "IBAN NL91ABNA0417164300 EUR")


@pytest.mark.parametrize(
    "text",
    [
        "DE89 3704 0044 0532 0130 01",  # checksum off by one
        "GB82WEST12345698765433",
        "XX89370400440532013000",  # not a country
        "DE8937040044053201",  # too short for Germany
        "AB12 CDEF GHIJ KLMN OPQR",
        "ISBN 978-3-16-148410-0",
    ],
)
def test_iban_not_found(text: str) -> None:
    assert not found("iban", text)


def test_iban_check_is_mod_97() -> None:
    assert iban_ok("GB82WEST12345698765432")
    assert not iban_ok("GB82WEST1234569876543")  # wrong length for GB


@pytest.mark.parametrize("text", ["SSN 123-45-6789", "ssn: 123 45 6789", "078-05-1121", "899-99-9999"])
def test_us_ssn_found(text: str) -> None:
    assert found("us_ssn", text)


@pytest.mark.parametrize(
    "text",
    [
        "000-12-3456",  # area 000
        "666-12-3456",  # area 666
        "900-12-3456",  # area 9xx
        "987-65-4321",
        "123-00-6789",  # group 00
        "123-45-0000",  # serial 0000
        "078-05-1120",  # the Woolworth wallet number
        "123-45 6789",  # mixed separators
        "2024-01-15",
        "1123-45-6789",  # part of a longer number
        "v123-45-6789",
    ],
)
def test_us_ssn_not_found(text: str) -> None:
    assert not found("us_ssn", text)


def test_ssn_rules() -> None:
    assert ssn_ok("123", "45", "6789")
    assert not any(ssn_ok(area, "45", "6789") for area in ("000", "666", "900", "999"))


@pytest.mark.parametrize(
    "text",
    [
        "call +1 415 555 2671",
        "+44 20 7946 0958",
        "+4915112345678",
        "+33 (0)1 23 45 67 89",
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "030 1234 5678",
        "06 12 34 56 78",
        "020 7946 0958",
    ],
)
def test_phone_found(text: str) -> None:
    assert found("phone", text)


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-15",  # dates
        "15.01.2024",
        "01/15/2024",
        "05-11-2024",
        "at 12:30:45",
        "version 10.0.19045.3803",  # version strings
        "v2.14.3-rc1",
        "1.2.3",
        "192.168.100.200",
        "ORD-415-555-2671",  # order numbers
        "order #4155552671",
        "invoice 4155552671",  # a plain number
        "4155552671",
        "415-555.2671",  # mixed separators
        "total 1234567.89",
        "+1",
    ],
)
def test_phone_not_found(text: str) -> None:
    assert not found("phone", text)


def test_a_detector_never_hands_back_what_it_matched() -> None:
    detection = Detection.of({}, {"public": (), "confidential": ("card", "email")}, {"public": 0, "confidential": 1})
    detected = detection.scan(
        "card 4111 1111 1111 1111, mail a@example.com", "public", {"public": 0, "confidential": 1}
    )
    assert detected is not None and detected.detectors == ("card", "email")
    assert "4111" not in str(detected.to_json()) and "example" not in str(detected.to_json())


def test_scan_picks_the_most_sensitive_class_and_never_lowers() -> None:
    rank = {"public": 0, "internal": 1, "confidential": 2}
    detection = Detection.of({}, {"internal": ("email",), "confidential": ("card",)}, rank)
    text = "mail a@example.com, card 4111111111111111"
    assert detection.scan(text, "public", rank) == Detected("confidential", "public", ("card",))
    assert detection.scan("mail a@example.com", "public", rank).data_class == "internal"  # type: ignore[union-attr]
    assert detection.scan(text, "confidential", rank) is None, "already the most sensitive: nothing to scan for"
    assert detection.scan("mail a@example.com", "internal", rank) is None, "no class above internal fired"


def test_custom_patterns() -> None:
    finders = Detection.of({"employee_id": compile_custom("EMP-[0-9]{6}")}, {}, {}).finders  # with the built-ins
    assert fired(finders, ("employee_id", "email"), "ticket for EMP-004711") == ("employee_id",)
    assert fired(finders, ("employee_id",), "EMP-47") == ()


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("(a+)+b", "upper bound"),
        ("[A-Z]+", "upper bound"),
        ("x*", "upper bound"),
        ("(a|ab){2,9}", "repeat or an alternation"),
        ("(a{1,5}){1,5}", "repeat or an alternation"),
        (r"(ab)\1", "backreferences"),
        ("[0-9]{1,64}[0-9]{1,64}", "too many ways"),
        (f"x{{{MAX_MATCH_CHARS + 1}}}", "at most"),
        ("a?", "empty string"),
        ("(unclosed", "not a valid regular expression"),
    ],
)
def test_unsafe_custom_patterns_are_refused_with_the_reason(pattern: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        compile_custom(pattern)


@pytest.mark.parametrize(
    "pattern", ["EMP-[0-9]{6}", "(?i)emp[- ]?[0-9]{6}", "(?:AB|CD)-[0-9]{4}", "(?<![0-9])P[0-9]{7}"]
)
def test_bounded_custom_patterns_are_accepted(pattern: str) -> None:
    assert compile_custom(pattern).pattern == pattern


def test_unsafe_is_a_value_error() -> None:
    assert issubclass(UnsafePattern, ValueError)
