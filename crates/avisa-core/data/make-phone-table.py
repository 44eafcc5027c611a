#!/usr/bin/env python3
"""Builds phone-readings.csv: typed phone inputs with the reading Avisa must
give, checked against libphonenumber (the `phonenumbers` package, Google's
metadata) and, where the two differ, against the numbering plans:

- Mexico retired its dialling prefixes on 3 August 2019 (IFT): "044"/"045"
  before a mobile, "01" before a long-distance number and "+52 1" before a
  mobile from abroad. libphonenumber now calls such inputs invalid; people
  still type them, and they name exactly one ten-digit number, so Avisa
  reads them as that number (rule `mx-retired`).
- "1" and ten digits is how the US and Canada write a number; in Mexico it
  was only ever the retired "+52 1" form. With Mexico or no country chosen,
  when both readings are valid both are offered, the North American first
  (rule `na-first`); libphonenumber, asked in Mexico, reads it as Mexican.
- With no country chosen, a national form valid in both Mexico and the US is
  never guessed: both readings are offered (rule `both`).
- "00" (Mexico's international prefix) and "011" (the US's) are read as
  international prefixes whichever country is chosen: no national number of
  either country starts with 0, so the input has no other meaning (rule
  `any-idd`; libphonenumber calls "0052 …" invalid in the US and "011 1 …"
  invalid in Mexico).

Each row: input, country ("" for none), expected ("+E164", "ask:+A|+B" for
the readings offered in that order, or "invalid"), rule, libphonenumber's
own answer. Run: pip install phonenumbers==9.0.43; python3 make-phone-table.py
"""
import csv
import re
import sys

import phonenumbers as pn

MX_NATIONAL = [
    "5512345678", "5587654321", "3312345678", "8112345678", "2221234567",
    "6641234567", "9981234567", "6561234567", "4421234567", "9991234567",
    "6671234567", "4771234567", "7441234567", "2281234567", "8991234567",
    "4151234567", "3121234567", "9611234567",
]
US_NATIONAL = [
    "4157575405", "2135550100", "3125550199", "2125550123", "7135550142",
    "6025550177", "3055550111", "2065550166", "6715550100", "7875550100",
    "4045550188", "6175550133", "7025550155", "9095550101", "5125550172",
    "2025550190", "6045550123", "4165550199",
]
INVALID = ["12345", "0000000000", "1111111111", "5555", "999", "+52 12", "abc", "+1 000 000 0000"]


def e164(n):
    return pn.format_number(n, pn.PhoneNumberFormat.E164)


def lib(text, region):
    try:
        n = pn.parse(text, region or "ZZ")
    except pn.NumberParseException:
        return None
    return e164(n) if pn.is_valid_number(n) else None


def digits(text):
    plus = text.strip().startswith("+")
    d = re.sub(r"\D", "", text)
    return ("+" if plus else "") + d


def valid_mx(national):
    return lib("+52" + national, None)


def valid_na(ten):
    return lib("+1" + ten, None)


def expected(text, country):
    """The reading by the rules above, built on libphonenumber's validity."""
    d = digits(text)
    # International forms.
    intl, rule = None, "lib"
    if d.startswith("+"):
        intl = d[1:]
    elif d.startswith("00"):
        intl, rule = d[2:], ("lib" if country in ("MX", "") else "any-idd")
    elif d.startswith("011"):
        intl, rule = d[3:], ("lib" if country == "US" else "any-idd")
    if intl is not None:
        if intl.startswith("521") and len(intl) == 13:
            got = valid_mx(intl[3:])
            return (got, "mx-retired") if got else ("invalid", "mx-retired")
        got = lib("+" + intl, None)
        return (got or "invalid", rule)
    # "1" and ten digits.
    if country in ("MX", "") and len(d) == 11 and d.startswith("1"):
        na, mx = valid_na(d[1:]), valid_mx(d[1:])
        if na and mx and na != mx:
            return ("ask:%s|%s" % (na, mx), "na-first")
        return (na or mx or "invalid", "na-first")
    # Mexico's retired national prefixes.
    def mexican(nat):
        if len(nat) == 13 and nat[:3] in ("044", "045"):
            return valid_mx(nat[3:]), "mx-retired"
        if len(nat) == 12 and nat.startswith("01"):
            return valid_mx(nat[2:]), "mx-retired"
        if len(nat) == 13 and nat.startswith("521"):
            return valid_mx(nat[3:]), "mx-retired"
        if len(nat) == 12 and nat.startswith("52"):
            return valid_mx(nat[2:]), "lib"
        return lib(nat, "MX"), "lib"
    if country == "MX":
        got, rule = mexican(d)
        return (got or "invalid", rule)
    if country == "US":
        return (lib(d, "US") or "invalid", "lib")
    mx, rule = mexican(d)
    us = lib(d, "US")
    if mx and us and mx != us:
        return ("ask:%s|%s" % (mx, us), "both")
    return (mx or us or "invalid", rule if mx else "lib")


def typed_mx(n):
    a, b = (n[:2], n[2:]) if n[:2] in ("55", "56", "33", "81") else (n[:3], n[3:])
    return [
        n, f"{a} {b[:-4]} {b[-4:]}", f"({a}) {b[:-4]}-{b[-4:]}", f"044 {a} {b}",
        f"045 {n}", f"01 {a} {b}", f"+52 {a} {b}", f"+52 1 {a} {b}", f"52 1 {n}",
        f"0052 {n}", f"+52-{n}", f"52{n}",
    ]


def typed_us(n):
    return [
        n, f"({n[:3]}) {n[3:6]}-{n[6:]}", f"{n[:3]}.{n[3:6]}.{n[6:]}", f"1-{n[:3]}-{n[3:6]}-{n[6:]}",
        f"1{n}", f"+1 {n[:3]} {n[3:6]} {n[6:]}", f"001 {n}", f"011 1 {n}",
    ]


def main():
    rows, seen = [], set()
    for inputs in [*(typed_mx(n) for n in MX_NATIONAL), *(typed_us(n) for n in US_NATIONAL), [INVALID]]:
        for text in (inputs if isinstance(inputs[0], str) else inputs[0]):
            for country in ("MX", "US", ""):
                if (text, country) in seen:
                    continue
                seen.add((text, country))
                want, rule = expected(text, country)
                rows.append((text, country, want, rule, lib(text, country or "ZZ") or "invalid"))
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["input", "country", "expected", "rule", "libphonenumber"])
    out.writerows(rows)


main()
