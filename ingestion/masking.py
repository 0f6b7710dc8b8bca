"""What is kept of a rejected line: every user-linked value hashed or masked, whatever its shape.

A rejected line is kept so an engineer can see why it was set aside, but it came from an
untrusted export and may hold personal data anywhere. So:
- a line that parses (a JSON value, a CSV row whose fields line up with the header) is rebuilt
  from its fields: `user_id` becomes the same keyed hash `raw.*.user_key` holds (so the row can
  still be traced), phone, identity number, IP address and comment become `***` (field names
  compared case-insensitively), and every other value is scrubbed of anything shaped like a
  phone number, an identity number, an IP address (v4 or v6) or an e-mail address;
- a line that does not parse well enough to know which value is which keeps only its length,
  a keyed hash of it and, for JSON-like text, the masked `key: value` pairs that can be found;
- whatever is kept is capped (a 50 MB line keeps its first characters, its length and its hash).
Rejected lines are few, so this runs in Python, line by line, only on them.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import json
import re
from typing import Any

from citycloud.ingestion.pii import PII_FIELDS, USER_FIELDS, hmac_hex

MASK = "***"
MAX_KEPT_CHARS = 2000        # of a rejected line's masked text
MAX_REASON_CHARS = 300       # of a rejection reason (it quotes a field value)
MAX_PARSED_CHARS = 1 << 16   # longer lines are not parsed: summarised

_PATTERNS = [re.compile(p) for p in (
    # identity numbers: 18 characters, digit groups possibly split by spaces or dashes
    r"(?<![0-9A-Za-z])\d{6}[\s-]?\d{4}[\s-]?\d{4}[\s-]?\d{3}[\dXx](?![0-9A-Za-z])",
    # mainland mobile numbers, optionally +86, written with spaces or dashes
    r"(?<![0-9A-Za-z])(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d){8}(?![0-9A-Za-z])",
    # IPv4
    r"(?<![0-9.])\d{1,3}(?:\.\d{1,3}){3}(?![0-9])",
    # IPv6: full or with '::' (a clock time has at most two colons and no '::')
    r"(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{1,4}:){3,7}[0-9A-Fa-f]{1,4}(?![0-9A-Za-z:])",
    r"(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?::(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?"
    r"(?:%\w+)?(?![0-9A-Za-z:])",
    # e-mail addresses
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",
)]
_JSON_PAIR = re.compile(r'"((?:[^"\\]|\\.){1,64})"\s*:\s*("(?:[^"\\]|\\.)*"?|[^,}\]\s]+)')


def scrub(text: str) -> str:
    """Mask anything shaped like a phone, identity number, IP or e-mail address in free text."""
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    return text


def line_hash(key: bytes, text: str) -> str:
    """Keyed, so a short line cannot be found again by hashing guesses."""
    return hmac.new(key, b"rejected-line\0" + text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16]


class Masker:
    def __init__(self, key: bytes, city: str):
        self.key = key
        self.city = city

    def user_key(self, value: Any) -> Any:
        if value is None or value == "":
            return value
        uid = value if isinstance(value, str) else json.dumps(value)
        return hmac_hex(self.key, f"{self.city}:{uid}")

    def value(self, name: str, value: Any) -> Any:
        lowered = name.strip().lower()
        if lowered in USER_FIELDS:
            return self.user_key(value)
        if lowered in PII_FIELDS:
            return value if value in (None, "") else MASK
        return self.anything(value)

    def anything(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {scrub(str(k)): self.value(str(k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.anything(v) for v in value]
        if isinstance(value, str):
            return scrub(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            text = json.dumps(value)
            return value if scrub(text) == text else MASK
        return value

    def summary(self, text: str, note: str) -> str:
        found = [f"{scrub(k)}={json.dumps(self.value(k, _unquote(v)), ensure_ascii=False)}"
                 for k, v in _JSON_PAIR.findall(text[:MAX_PARSED_CHARS])]
        head = f"[{note}: {len(text)} chars, hmac {line_hash(self.key, text)}]"
        return head + (" " + ", ".join(found) if found else "")

    def jsonl(self, text: str) -> str:
        if len(text) > MAX_PARSED_CHARS:
            return self.summary(text, "line too long to parse")
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            return self.summary(text, "unparsed line")
        if not isinstance(doc, dict):
            # Values without field names: a user id cannot be told from the rest.
            return self.summary(text, "not a JSON object")
        return json.dumps(self.anything(doc), ensure_ascii=False)

    def csv(self, text: str, header: list[str] | None) -> str:
        if len(text) > MAX_PARSED_CHARS or not header:
            return self.summary_csv(text, header)
        try:
            fields = next(csv.reader([text]))
        except (csv.Error, StopIteration):
            return self.summary_csv(text, header)
        if len(fields) != len(header):
            return self.summary_csv(text, header, len(fields))
        masked = [self.value(name, value) for name, value in zip(header, fields)]
        out = _CsvLine()
        csv.writer(out, lineterminator="").writerow(masked)
        return out.text

    def summary_csv(self, text: str, header: list[str] | None, n_fields: int | None = None) -> str:
        shape = f", {n_fields} fields where the header has {len(header)}" if n_fields is not None and header else ""
        # Fields cannot be told apart, so none is kept: any of them may be a user id.
        return f"[unparsed CSV line: {len(text)} chars{shape}, hmac {line_hash(self.key, text)}]"

    def line(self, text: str, fmt: str, header: list[str] | None = None) -> str:
        kept = self.jsonl(text) if fmt == "jsonl" else self.csv(text, header)
        return cap(kept, text, self.key)


class _CsvLine:
    def __init__(self):
        self.text = ""

    def write(self, s: str) -> None:
        self.text += s


def _unquote(v: str) -> Any:
    if v.startswith('"'):
        try:
            return json.loads(v if v.endswith('"') and len(v) > 1 else v + '"')
        except ValueError:
            return v.strip('"')
    return v


def cap(kept: str, original: str, key: bytes) -> str:
    if len(kept) <= MAX_KEPT_CHARS:
        return kept
    return (kept[:MAX_KEPT_CHARS] + f"… [cut: line of {len(original)} chars, hmac {line_hash(key, original)}]")


def mask_reason(reason: str) -> str:
    """A rejection reason quotes the offending value: scrub it and keep it short."""
    reason = scrub(reason)
    return reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS] + f"… [{len(reason)} chars]"
