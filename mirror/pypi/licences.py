"""A release's licence as its core metadata states it: PEP 639 `License-Expression`, else a short
`License` field, else the `License ::` trove classifiers (`MIT License`).

Read from metadata an upstream wrote, so nothing in it may break serving that metadata: a field
with bytes that are not ASCII (the email parser then gives a `Header`, not a str), a licence's whole
text, a missing field — each gives a value or None, never an error."""

from __future__ import annotations

from email.parser import BytesHeaderParser

_PARSER = BytesHeaderParser()
_SHORT = 80
"""A `License` field longer than this is the licence's text, not its name."""


def licence_from_metadata(metadata: bytes) -> str | None:
    try:
        headers = _PARSER.parsebytes(metadata)
        expression = str(headers.get("License-Expression") or "").strip()
        if expression:
            return expression
        field = " ".join(str(headers.get("License") or "").split())
        if field and len(field) <= _SHORT and field.upper() not in ("UNKNOWN", "NONE"):
            return field
        classifiers = [
            str(value).rsplit("::", 1)[-1].strip()
            for value in headers.get_all("Classifier") or ()
            if str(value).startswith("License ::") and str(value).count("::") >= 2
        ]
    except (ValueError, UnicodeError, TypeError, AttributeError):
        return None
    return " OR ".join(classifiers) if classifiers else None
