#!/usr/bin/env python3
"""The one table of error codes (shared/runtime/api_error.c) against http-api.md and the code.

Checks, both ways:
  1. http-api.md's "Error codes" table and the C table list the same codes, statuses, senders.
  2. Every code the programs pass to api_error_set(), http_respond_error() or request_error()
     (the coordinator's answer to a request in progress) is in the table,
     and every code in the table is passed somewhere (no documented code that cannot be sent).
  3. Wherever http-api.md names a code after a status (**409** `x`, or a row | 409 | `x` |),
     that status is the table's.
Exit status 1 with the differences listed, 0 when all hold.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
C_TABLE = ROOT / "shared/runtime/api_error.c"
DOC = ROOT / "http-api.md"
SOURCES = ["coordinator", "participant", "shared/runtime", "cli"]


def c_table():
    text = C_TABLE.read_text()
    rows = re.findall(r'\{"([a-z_]+)", (\d{3}), "(\w+)", "[^"]*"\}', text)
    return {code: (int(status), who) for code, status, who in rows}


def doc_table():
    text = DOC.read_text()
    m = re.search(r"^## Error codes\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if not m:
        return None, text
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \| (\w+) \|", m.group(1), re.M)
    return {code: (int(status), who) for code, status, who in rows}, text


def call_args(text, name):
    """The string literals of the argument after the first, in every call of name."""
    found = []
    for m in re.finditer(r"\b%s\(" % name, text):
        i, depth, commas, start = m.end(), 1, 0, None
        while i < len(text) and depth:
            c = text[i]
            if c == '"':
                j = i + 1
                while text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                i = j
            elif c in "([":
                depth += 1
            elif c in ")]":
                depth -= 1
            elif c == "," and depth == 1:
                commas += 1
                if commas == 1:
                    start = i + 1
                elif commas == 2:
                    found.append(re.findall(r'"([a-z_]+)"', text[start:i]))
                    break
            i += 1
    return found


def sent_codes():
    codes = {}
    for folder in SOURCES:
        for path in sorted((ROOT / folder).glob("*.c")):
            if path == C_TABLE:
                continue
            text = path.read_text()
            for name in ("api_error_set", "http_respond_error", "request_error"):
                for literals in call_args(text, name):
                    for code in literals:
                        codes.setdefault(code, path.relative_to(ROOT))
    return codes


def main():
    problems = []
    table = c_table()
    doc, text = doc_table()
    if not table:
        problems.append("no entries found in %s" % C_TABLE)
    if doc is None:
        problems.append("http-api.md has no section '## Error codes'")
        doc = {}
    for code in sorted(set(table) | set(doc)):
        if code not in doc:
            problems.append("%s: in the C table, not in http-api.md's table" % code)
        elif code not in table:
            problems.append("%s: in http-api.md's table, not in the C table" % code)
        elif table[code] != doc[code]:
            problems.append("%s: C table says %s, http-api.md says %s" % (code, table[code], doc[code]))
    sent = sent_codes()
    for code, where in sorted(sent.items()):
        if code not in table:
            problems.append("%s: sent by %s, not in the table" % (code, where))
    for code in sorted(table):
        if code not in sent:
            problems.append("%s: in the table, but no code sends it" % code)
    # Statuses named in the prose and in per-endpoint tables.
    for m in re.finditer(r"\*\*(\d{3})\*\*((?:(?!\*\*|\n\n|\n\|).)*)", text, re.S):
        for code in re.findall(r"`([a-z_]+)`", m.group(2)):
            if code in table and table[code][0] != int(m.group(1)):
                problems.append("http-api.md names %s after **%s**; its status is %d"
                                % (code, m.group(1), table[code][0]))
    for m in re.finditer(r"^\| (\d{3}) \| ([^|]*)\|", text, re.M):
        for code in re.findall(r"`([a-z_]+)`", m.group(2)):
            if code in table and table[code][0] != int(m.group(1)):
                problems.append("http-api.md lists %s under %s; its status is %d"
                                % (code, m.group(1), table[code][0]))
    for p in problems:
        print(p)
    print("%d codes in the table, %d sent by the code, %d problems" % (len(table), len(sent),
                                                                      len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
