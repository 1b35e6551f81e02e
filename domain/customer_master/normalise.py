"""Normal forms for comparing customers across systems: tax ids, internet domains, names.

Each function maps the many ways a person or a vendor writes the same thing onto one string,
so that two records can be compared by equality. Pure functions, standard library only.
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher
from urllib.parse import urlsplit

# Country (ISO 3166-1 alpha-2) -> the prefix its VAT numbers carry. Greece is the one EU
# member whose VAT prefix differs from its ISO code (EL, not GR). The UK (GB) and Northern
# Ireland (XI) keep prefixed VAT numbers outside the EU; Switzerland's UID is CHE + 9 digits.
VAT_PREFIXES: dict[str, str] = {
    "AT": "AT",
    "BE": "BE",
    "BG": "BG",
    "CH": "CHE",
    "CY": "CY",
    "CZ": "CZ",
    "DE": "DE",
    "DK": "DK",
    "EE": "EE",
    "ES": "ES",
    "FI": "FI",
    "FR": "FR",
    "GB": "GB",
    "GR": "EL",
    "HR": "HR",
    "HU": "HU",
    "IE": "IE",
    "IT": "IT",
    "LT": "LT",
    "LU": "LU",
    "LV": "LV",
    "MT": "MT",
    "NL": "NL",
    "PL": "PL",
    "PT": "PT",
    "RO": "RO",
    "SE": "SE",
    "SI": "SI",
    "SK": "SK",
}
_KNOWN_PREFIXES = frozenset(VAT_PREFIXES.values()) | {"XI"}
_SWISS_UID = re.compile(r"CHE(\d{9})(?:MWST|TVA|IVA|TPV)?")


def normalise_tax_id(raw: str | None, country: str | None = None) -> str | None:
    """A tax id in one canonical form, or None when there is nothing in it.

    Upper-cased, with everything but ASCII letters and digits removed (spaces, dots, dashes,
    slashes: ``DE 123.456.789`` is ``DE123456789``). A Greek ``GR`` prefix becomes ``EL``; a
    Swiss UID loses its ``MWST``/``TVA``/``IVA`` suffix. An id without a known VAT prefix gets
    the prefix of ``country`` when that country has one (``123456789`` billed in DE is
    ``DE123456789``); other ids (a US EIN ``12-3456789`` is ``123456789``) stay bare.
    """
    if raw is None:
        return None
    compact = re.sub(r"[^0-9A-Z]", "", unicodedata.normalize("NFKC", raw).upper())
    if not compact:
        return None
    swiss = _SWISS_UID.fullmatch(compact)
    if swiss:
        return f"CHE{swiss.group(1)}"
    if compact.startswith("GR") and compact[2:3].isdigit():
        return f"EL{compact[2:]}"
    if compact[:2] in _KNOWN_PREFIXES:
        return compact
    prefix = VAT_PREFIXES.get((country or "").upper())
    if prefix is not None:
        return f"{prefix}{compact}"
    return compact


_ANGLE_ADDRESS = re.compile(r"<([^<>]+)>")
_HOSTNAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")


def normalise_domain(raw: str | None) -> str | None:
    """The internet domain of a website URL or an e-mail address, or None when it has none.

    Accepts ``https://www.Acme.com:443/about``, ``acme.com``, ``sales@acme.com``,
    ``mailto:sales@acme.com`` and ``Jane <jane@acme.com>``: the scheme, user info, port,
    path, query, a trailing dot and one leading ``www.`` are dropped and the host is
    lower-cased. International names are IDNA-encoded (``bücher.de`` is
    ``xn--bcher-kva.de``; Python's IDNA 2003 codec, which also maps ``ß`` to ``ss``).
    A single-label host (``localhost``), an IP literal or a host IDNA refuses yields None.
    Sub-domains are kept: ``eu.acme.com`` is not ``acme.com`` (that needs the public suffix
    list, which this rule does not carry).
    """
    if raw is None:
        return None
    text = raw.strip()
    bracketed = _ANGLE_ADDRESS.search(text)
    if bracketed:
        text = bracketed.group(1).strip()
    if text.casefold().startswith("mailto:"):
        text = text[len("mailto:") :]
    if "@" in text and "://" not in text and "/" not in text.split("@", 1)[0]:
        host = text.rsplit("@", 1)[1]
    else:
        netloc = urlsplit(text if "://" in text or text.startswith("//") else f"//{text}").netloc
        host = netloc.rsplit("@", 1)[-1]
        if host.startswith("["):
            return None
        host = host.split(":", 1)[0]
    host = host.strip().rstrip(".\u3002\uff0e\uff61")
    if not host:
        return None
    try:
        encoded = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    if encoded.startswith("www.") and encoded.count(".") >= 2:
        encoded = encoded[len("www.") :]
    if not _HOSTNAME.fullmatch(encoded) or encoded.replace(".", "").isdigit():
        return None
    return encoded


# Letters Unicode does not decompose into a base letter plus an accent.
_UNDECOMPOSABLE = str.maketrans(
    {"ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ð": "d", "ł": "l", "\u0131": "i", "þ": "th"}
)

# Legal forms dropped from the end of a name, as they read after normalisation (dots removed,
# other punctuation a space, ``&`` spelled ``and``: ``GmbH & Co. KG`` is ``gmbh and co kg``,
# dropped word by word). A phrase of several words is dropped only whole.
LEGAL_SUFFIXES: tuple[str, ...] = (
    # English-speaking countries
    "inc", "incorporated", "corp", "corporation", "co", "company", "llc", "llp", "lp",
    "ltd", "limited", "plc", "pty", "pty ltd", "pte", "pte ltd",
    # German-speaking countries
    "gmbh", "mbh", "ag", "kg", "kgaa", "ohg", "ug", "ev", "se",
    # French, Spanish, Italian, Portuguese
    "sa", "sas", "sasu", "sarl", "eurl", "sca", "srl", "spa", "sl", "slu", "ltda",
    "sa de cv", "sab de cv", "sapi de cv", "s de rl", "s de rl de cv",
    # Benelux and Nordics
    "bv", "nv", "vof", "oy", "oyj", "ab", "as", "asa", "aps", "a s",
    # Central and Eastern Europe, Asia
    "sro", "zrt", "kft", "doo", "sp z oo", "kk", "bhd", "sdn bhd",
)  # fmt: skip
_SUFFIXES_LONGEST_FIRST: tuple[tuple[str, ...], ...] = tuple(
    sorted({tuple(phrase.split()) for phrase in LEGAL_SUFFIXES}, key=lambda p: (-len(p), p))
)
# Legal forms written before the name (Russian, Ukrainian).
LEGAL_PREFIXES = frozenset(
    {
        "\u043e\u043e\u043e",  # OOO in Cyrillic
        "\u043e\u0430\u043e",  # OAO in Cyrillic
        "\u0437\u0430\u043e",  # ZAO in Cyrillic
        "\u043f\u0430\u043e",  # PAO in Cyrillic
        "\u0430\u043e",  # AO in Cyrillic
        "\u0442\u043e\u0432",  # TOV in Cyrillic
        "\u043f\u0430\u0442",  # PAT in Cyrillic
        "ooo",
        "zao",
        "pao",
    }
)
# Japanese, Chinese and Korean legal forms, written without spaces before or after the name.
CJK_LEGAL_FORMS: tuple[str, ...] = (
    "股份有限公司",
    "有限责任公司",
    "有限公司",
    "株式会社",
    "有限会社",
    "合同会社",
    "주식회사",
)


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_UNDECOMPOSABLE)
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


def _strip_cjk_forms(token: str) -> str:
    for form in CJK_LEGAL_FORMS:
        if token.endswith(form) and len(token) > len(form):
            return token[: -len(form)]
        if token.startswith(form) and len(token) > len(form):
            return token[len(form) :]
    return token


def normalise_name(raw: str | None) -> str:
    """A company name reduced to what tells companies apart ("" when nothing is left).

    Case-folded (``ß`` is ``ss``), accents folded (``Société`` is ``societe``, ``Øresund``
    is ``oresund``), ``&`` read as ``and``, dots and apostrophes removed (``S.A.`` is ``sa``,
    ``McDonald's`` is ``mcdonalds``), other punctuation a space, a leading ``The`` and legal
    forms dropped: trailing ones such as Inc, LLC, Ltd, GmbH & Co. KG, S.A., SAS, B.V.,
    Pty Ltd, S.A. de C.V. (:data:`LEGAL_SUFFIXES`), leading ones such as the Russian OOO
    (:data:`LEGAL_PREFIXES`), and Japanese, Chinese or Korean forms such as 株式会社. A name
    that is only a legal form keeps its last word.
    """
    if raw is None:
        return ""
    text = _fold(raw).replace("&", " and ")
    text = re.sub("[.'`\u2019\u00b4]", "", text)
    tokens = "".join(ch if ch.isalnum() else " " for ch in text).split()
    if len(tokens) > 1 and tokens[0] == "the":
        tokens = tokens[1:]
    if len(tokens) > 1 and tokens[0] in LEGAL_PREFIXES:
        tokens = tokens[1:]
    if tokens:
        tokens[0] = _strip_cjk_forms(tokens[0])
        tokens[-1] = _strip_cjk_forms(tokens[-1])
    while len(tokens) > 1:
        if tokens[-1] == "and":
            tokens.pop()
            continue
        for phrase in _SUFFIXES_LONGEST_FIRST:
            if len(tokens) > len(phrase) and tuple(tokens[-len(phrase) :]) == phrase:
                del tokens[-len(phrase) :]
                break
        else:
            break
    return " ".join(tokens)


NAME_SIMILARITY_THRESHOLD = 0.85
"""Two normalised names at least this similar (difflib's ratio: twice the matched characters
over both lengths) count as the same company name with a typo or a variant spelling:
``globex`` and ``globexx`` (0.92), ``acme software`` and ``acme sofware`` (0.96) are similar,
``acme`` and ``apex`` (0.5) are not."""


def name_similarity(a: str, b: str) -> float:
    """How alike two normalised names are, from 0 (nothing shared) to 1 (equal)."""
    if a == b:
        return 1.0
    return SequenceMatcher(None, a, b).ratio()


def names_similar(a: str, b: str) -> bool:
    """Whether two normalised names plausibly name the same company: equal, within
    :data:`NAME_SIMILARITY_THRESHOLD`, or every word of one is a word of the other
    (``acme`` and ``acme software``). Empty names are never similar."""
    if not a or not b:
        return False
    if name_similarity(a, b) >= NAME_SIMILARITY_THRESHOLD:
        return True
    words_a, words_b = set(a.split()), set(b.split())
    return words_a <= words_b or words_b <= words_a
