"""A release's licence as its core metadata states it: PEP 639 `License-Expression`, else a short
`License` field, else the `License ::` trove classifiers (`MIT License`)."""

from __future__ import annotations

from email.parser import BytesHeaderParser

_PARSER = BytesHeaderParser()
_SHORT = 80
"""A `License` field longer than this is the licence's text, not its name."""


def licence_from_metadata(metadata: bytes) -> str | None:
    try:
        headers = _PARSER.parsebytes(metadata)
    except (ValueError, UnicodeDecodeError):
        return None
    expression = (headers.get("License-Expression") or "").strip()
    if expression:
        return expression
    field = " ".join((headers.get("License") or "").split())
    if field and len(field) <= _SHORT and field.upper() not in ("UNKNOWN", "NONE"):
        return field
    classifiers = [
        value.rsplit("::", 1)[-1].strip()
        for value in headers.get_all("Classifier") or ()
        if value.startswith("License ::") and value.count("::") >= 2
    ]
    return " OR ".join(classifiers) if classifiers else None
