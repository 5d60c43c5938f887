"""Property: one shopper's odd input never changes another shopper's answer or order.

Each example is a fresh sale and one batch of purchase requests fired at the real API at
the same moment: normal shoppers (valid ids of any script, bodies the contract takes,
Idempotency-Keys, second clicks) mixed with odd requests (user ids the door refuses,
forged or broken tokens, bad bodies, oversized bodies, other media types, bad keys,
odd sale names). The API sends the purchases that arrive together to Redis in one script
call and their accepted reservations to the worker in one task message, so an odd
request that got past the door would share both with the shoppers beside it. Then,
against HTTP answers, SQL and the sale's figures:

- no answer is 5xx, and every answer has the contract's JSON shape;
- odd requests get the 4xx that fits them; normal shoppers get 202, or a 409 that the
  final state proves legitimate (`sold_out` only when fewer units than asked are left,
  `limit_reached` only when the shopper's orders leave no room), or 422
  `idempotency_key_reused` only after their key bought with another quantity;
- every 202 becomes exactly one order row of that shopper and quantity, and no row exists
  without a 202; nobody holds more than the per-user limit; the figures add up at rest;
  nothing of the sale became a dead letter;
- sent again once the orders are stored, keyed purchases answer their order again and
  odd requests are refused again, and neither moves SQL or the figures.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import unicodedata
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from flashsale.spec import is_valid_sale_name
from tests.conftest import Platform, wait_for
from tests.helpers.tokens import signed

# --- the rule for user ids, as the contract and flashsale/ids.py document it ------------

MAX_USER_ID = 255
# Controls, surrogates, unassigned code points, line and paragraph separators.
REFUSED_CATEGORIES = ("Cc", "Cs", "Cn", "Zl", "Zp")
TOKEN_LIMIT = 8192  # bytes; the API's default FLASHSALE_MAX_TOKEN_BYTES
BODY_LIMIT = 4096  # bytes; the API's default FLASHSALE_MAX_BODY_BYTES
MAX_QUANTITY = 1000


def is_user_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= MAX_USER_ID
        and not value.isspace()
        and all(unicodedata.category(c) not in REFUSED_CATEGORIES for c in value)
    )


# --- tokens, written by hand: PyJWT cannot put a lone surrogate in a claim -------------

SURROGATE = re.compile("[\ud800-\udfff]")


def claim_json(value: object, escape: bool) -> str:
    """JSON text of a claim: every non-ASCII character as a \\u escape (`escape`), or as
    raw UTF-8; a lone surrogate, which UTF-8 cannot hold, always as an escape."""
    written = json.dumps(value, ensure_ascii=escape)
    return SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", written)


def token_for(sub: object, escape: bool = False, exp_in: int = 3600) -> str:
    exp = int(time.time()) + exp_in
    token = signed(f'{{"sub":{claim_json(sub, escape)},"exp":{exp}}}')
    if escape and len(token) > TOKEN_LIMIT:
        # Escaped, a long id of astral characters (twelve bytes each) no longer fits the
        # API's token limit; such a shopper is sent with raw UTF-8 claims instead.
        return token_for(sub, False, exp_in)
    return token


# --- what one request is ---------------------------------------------------------------


@dataclass(frozen=True)
class Shot:
    """One purchase request of a batch, and what it is (`kind`)."""

    kind: str
    authorization: bytes | None
    body: bytes | None = None
    content_type: bytes | None = None
    key: bytes | None = None
    chunked: bool = False
    sale: str | None = None  # the sale named in the path; None: the batch's sale
    # Header bytes HTTP does not allow: the server may refuse the request itself.
    bad_header_bytes: bool = False
    user: str | None = None  # the shopper, for normal requests
    quantity: int = 1
    note: str = ""  # what is odd about it, for the reader of a failure

    def __repr__(self) -> str:
        return f"<{self.describe()}>"

    def describe(self) -> str:
        parts = [self.kind]
        if self.note:
            parts.append(self.note)
        if self.user is not None:
            parts.append(f"user={self.user[:40]!r}")
        if self.body is not None:
            parts.append(f"body={self.body[:60]!r}{' chunked' if self.chunked else ''}")
        if self.content_type is not None:
            parts.append(f"type={self.content_type!r}")
        if self.key is not None:
            parts.append(f"key={self.key[:40]!r}")
        if self.sale is not None:
            parts.append(f"sale={self.sale[:40]!r}")
        return " ".join(parts)


@dataclass(frozen=True)
class Batch:
    per_user_limit: int
    stock: int
    shots: tuple[Shot, ...]

    def __repr__(self) -> str:
        shots = "".join(f"\n  {shot.describe()}" for shot in self.shots)
        return f"Batch(stock={self.stock}, perUserLimit={self.per_user_limit}):{shots}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    doc: Any = field(default=None)

    def parse(self) -> Any:
        try:
            self.doc = json.loads(self.body)
        except ValueError:
            self.doc = None
        return self.doc


# What each odd kind may be answered: (status, error code) pairs.
ODD_ANSWERS: dict[str, set[tuple[int, str]]] = {
    "bad_user": {(401, "unauthorized")},
    "bad_token": {(401, "unauthorized")},
    "bad_body": {(422, "invalid_request")},
    "huge_body": {(413, "body_too_large")},
    "bad_type": {(422, "invalid_request"), (415, "unsupported_media_type")},
    "bad_key": {(422, "invalid_request")},
    # A header byte HTTP does not allow: the server itself refuses the request (400, an
    # empty body the contract leaves to it), or the application does (422).
    "raw_key": {(400, "bad_request"), (422, "invalid_request")},
    "bad_sale": {(404, "unknown_sale"), (404, "not_found")},
}
NORMAL_REFUSALS = {(409, "sold_out"), (409, "limit_reached"), (422, "idempotency_key_reused")}

# --- strategies ------------------------------------------------------------------------

id_chars = st.characters(codec=None, exclude_categories=REFUSED_CATEGORIES)
valid_ids = st.one_of(
    st.text(id_chars, min_size=1, max_size=MAX_USER_ID),
    st.sampled_from(
        [
            "家族👨\u200d👩\u200d👧",  # an emoji sequence joined by U+200D
            "Zoë O'Neil",
            "e\u0301",  # a combining accent: another id than "é"
            "é",
            " padded ",
            "\u202eevil",  # a right-to-left override (a format character)
            "a" * MAX_USER_ID,
            "😀" * MAX_USER_ID,  # 1020 bytes of UTF-8
            "fs:{x}:held",  # key syntax: ids are length-prefixed in Redis keys
            "%00",
            "null",
        ]
    ),
).filter(is_user_id)

refused_char = st.characters(codec=None, categories=REFUSED_CATEGORIES)
short_text = st.text(id_chars, max_size=60)
bad_ids = st.one_of(
    st.tuples(short_text, refused_char, short_text).map("".join),
    st.text(st.sampled_from(" \u00a0\u2003\u3000\u1680"), min_size=1, max_size=20),
    st.text(st.characters(codec=None, categories=["Zs"]), min_size=1, max_size=5),
    st.text(st.sampled_from("ab😀"), min_size=MAX_USER_ID + 1, max_size=MAX_USER_ID + 40),
    st.sampled_from(
        [
            "",
            "\ud800",  # the probe's lone high surrogate
            "x\udc00",
            "\x00",  # the probe's NUL
            "al\x00ice",
            "\x1b[31mred",  # the probe's control character
            "alice\nadmin",
            "a\u2028b",
            "a\uffff",
            "\u0085",
            "\u3000",
        ]
    ),
    st.sampled_from([42, None, True, 1.5, ["alice"], {"id": "alice"}]),
).filter(lambda sub: not is_user_id(sub))

key_chars = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
valid_keys = st.text(key_chars, min_size=1, max_size=200)
JSON_TYPES = [
    b"application/json",
    b"application/json; charset=utf-8",
    b"Application/JSON",
    b"application/merge-patch+json",
]
OTHER_TYPES = [
    None,  # no Content-Type: the body is not read as JSON
    b"",
    b"text/plain",
    b"application/jsonfoo",
    b"application/json-seq",
    b"text/json",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data; boundary=x",
    b"application/octet-stream",
]


def _parses(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
bad_quantities = st.one_of(
    st.integers().filter(lambda n: not 1 <= n <= MAX_QUANTITY),
    st.floats(allow_nan=False, allow_infinity=False).filter(
        lambda f: not (f.is_integer() and 1 <= f <= MAX_QUANTITY)
    ),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.lists(st.integers(1, 3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
bad_bodies = st.one_of(
    bad_quantities.map(lambda q: json.dumps({"quantity": q}).encode()),
    st.sampled_from(
        [
            b'{"quantity": NaN}',
            b'{"quantity": Infinity}',
            b'{"quantity": -Infinity}',
            b'{"quantity": ' + b"9" * 4000 + b"}",
            b'{"Quantity": 1}',
            b"[1, 2]",
            b'"quantity"',
            b"   ",
            b"{not json",
            b"\xff\xfe not text",
            b"[" * 500 + b"]" * 500,
        ]
    ),
    st.dictionaries(st.text(max_size=8).filter(lambda k: k != "quantity"), json_values, min_size=1)
    .flatmap(lambda extra: st.sampled_from([extra, {"quantity": 1, **extra}]))
    .map(lambda doc: json.dumps(doc).encode()),
    (st.integers() | st.text(max_size=10) | st.booleans() | st.lists(json_values, max_size=3)).map(
        lambda doc: json.dumps(doc).encode()
    ),
    st.binary(min_size=1, max_size=200).filter(lambda raw: not _parses(raw)),
).filter(lambda raw: len(raw) <= BODY_LIMIT)


@st.composite
def normal_shots(draw: st.DrawFn, user: str, keys: list[str | None]) -> Shot:
    quantity = draw(st.sampled_from([1, 2]))
    if quantity == 1:
        # No body, an empty one and JSON null all mean the default quantity; JSON does
        # not tell 1 from 1.0 (the API documents that 2.0 is a quantity).
        written = [None, b"", b"{}", b"null", b'{"quantity": 1}', b'{"quantity":1.0}']
        body = draw(st.sampled_from([*written, b'{"quantity": 1e0}']))
    else:
        written = [b'{"quantity": 2}', b'{"quantity": 2.0}', b' {\n "quantity" : 2 }\t']
        body = draw(st.sampled_from(written))
    if body:
        content_type = draw(st.sampled_from(JSON_TYPES))
    else:  # no body: whatever its type, the default quantity
        content_type = draw(st.sampled_from([None, b"application/json", b"text/plain"]))
    key = draw(st.sampled_from(keys))
    return Shot(
        "normal",
        f"Bearer {token_for(user, draw(st.booleans()))}".encode(),
        body,
        content_type,
        key.encode() if key is not None else None,
        chunked=bool(body) and draw(st.booleans()),
        user=user,
        quantity=quantity,
    )


def _bad_authorizations(users: list[str]) -> st.SearchStrategy[tuple[str, bytes | None]]:
    def forged(user: str) -> st.SearchStrategy[tuple[str, bytes | None]]:
        exp = int(time.time()) + 3600
        sub = claim_json(user, False)
        claims = f'{{"sub":{sub},"exp":{exp}}}'
        good = signed(claims).split(".")
        other = signed(f'{{"sub":"intruder","exp":{exp}}}').split(".")
        tokens = {
            "wrong secret": signed(claims, secret="not-the-secret-" + "y" * 32),
            "expired": token_for(user, exp_in=-120),
            "no exp": signed(f'{{"sub":{sub}}}'),
            "exp as text": signed(f'{{"sub":{sub},"exp":"{exp}"}}'),
            "HS512": signed(claims, header='{"alg":"HS512","typ":"JWT"}'),
            "no signature": f"{good[0]}.{good[1]}.",
            "alg none": signed(claims, header='{"alg":"none"}').rsplit(".", 1)[0] + ".",
            "another claim's signature": f"{good[0]}.{good[1]}.{other[2]}",
        }
        choices: list[tuple[str, bytes | None]] = [
            ("no Authorization", None),
            ("Bearer alone", b"Bearer"),
            ("Basic", b"Basic YWxpY2U6cHc="),
            ("non-ASCII token", b"Bearer \xff\xfe"),
            ("token over the size limit", b"Bearer " + b"a" * (TOKEN_LIMIT + 10)),
            ("another scheme", f"Token {'.'.join(good)}".encode()),
            *((label, f"Bearer {t}".encode()) for label, t in tokens.items()),
        ]
        return st.sampled_from(choices)

    return st.sampled_from(users).flatmap(forged)


# Header values HTTP client libraries refuse to send (trailing whitespace, control bytes).
RAW_AUTHORIZATIONS = [b"Bearer ", b"Bearer \t", b"Bearer \x01", b"\x7fBearer x"]


# Stand-ins for names made from the batch's sale when the request is sent.
UNKNOWN_SALE = "<a valid name of no sale>"
UPPERCASE_SALE = "<the sale's name in capitals>"


odd_sale_names = st.text(st.characters(codec=None), max_size=300).filter(
    lambda name: not is_valid_sale_name(name)
)


@st.composite
def odd_shots(draw: st.DrawFn, users: list[str]) -> Shot:
    kind = draw(st.sampled_from(sorted(ODD_ANSWERS)))
    # Odd requests come from fresh users and from shoppers of the same batch alike.
    user = draw(st.sampled_from(users) | valid_ids)
    bearer = f"Bearer {token_for(user)}".encode()
    plain = b'{"quantity": 1}'
    if kind == "bad_user":
        sub = draw(bad_ids)
        authorization = f"Bearer {token_for(sub, draw(st.booleans()))}".encode()
        return Shot(kind, authorization, plain, JSON_TYPES[0], note=f"sub={sub!r:.80}")
    if kind == "bad_token":
        if draw(st.integers(0, 4)) == 0:
            raw = draw(st.sampled_from(RAW_AUTHORIZATIONS))
            return Shot(kind, raw, plain, JSON_TYPES[0], bad_header_bytes=True, note=f"{raw!r}")
        label, authorization = draw(_bad_authorizations(users))
        return Shot(kind, authorization, plain, JSON_TYPES[0], note=label)
    if kind == "bad_body":
        return Shot(kind, bearer, draw(bad_bodies), JSON_TYPES[0], chunked=draw(st.booleans()))
    if kind == "huge_body":
        size = draw(st.integers(BODY_LIMIT + 1, 4 * BODY_LIMIT))
        body = draw(
            st.sampled_from(
                [
                    b'{"quantity": 1, "pad": "' + b"a" * size + b'"}',
                    b'{"quantity": ' + b" " * size + b"1}",
                    b"\x00" * size,
                ]
            )
        )
        return Shot(kind, bearer, body, JSON_TYPES[0], chunked=draw(st.booleans()))
    if kind == "bad_type":
        return Shot(kind, bearer, plain, draw(st.sampled_from(OTHER_TYPES)))
    if kind == "bad_key":
        key = draw(
            st.one_of(
                st.just(b""),
                st.text(key_chars, min_size=201, max_size=400).map(str.encode),
                st.tuples(valid_keys, st.sampled_from(" \t"), valid_keys).map(
                    lambda t: "".join(t).encode()
                ),
                st.tuples(
                    st.text(key_chars, max_size=20),
                    st.characters(min_codepoint=0x80),
                    st.text(key_chars, max_size=20),
                ).map(lambda t: "".join(t).encode("utf-8", "surrogatepass")),
                st.binary(min_size=1, max_size=20).map(lambda b: b"k" + bytes(c | 0x80 for c in b)),
            )
        )
        return Shot(kind, bearer, plain, JSON_TYPES[0], key)
    if kind == "raw_key":
        # Control bytes (CR and LF aside, which would end the header line) that HTTP does
        # not allow in a header value (HTTP client libraries refuse to send them).
        control = draw(st.sampled_from([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]))
        key = draw(valid_keys).encode() + bytes([control]) + draw(valid_keys).encode()
        return Shot(kind, bearer, None, None, key, bad_header_bytes=True)
    assert kind == "bad_sale"
    name = draw(odd_sale_names | st.sampled_from([UNKNOWN_SALE, UPPERCASE_SALE]))
    return Shot(kind, bearer, plain, JSON_TYPES[0], sale=name)


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    limit = draw(st.sampled_from([1, 2]))
    users = draw(st.lists(valid_ids, min_size=6, max_size=20, unique=True))
    shots: list[Shot] = []
    for user in users:
        keys: list[str | None] = [None, *draw(st.lists(valid_keys, max_size=2, unique=True))]
        clicks = draw(st.sampled_from([1, 1, 1, 2, 3]))  # some shoppers click again
        shots += [draw(normal_shots(user, keys)) for _ in range(clicks)]
    shots += draw(
        st.lists(odd_shots(users), min_size=max(4, 20 - len(shots)), max_size=60 - len(shots))
    )
    stock = draw(st.integers(1, len(users) * limit))
    return Batch(limit, stock, tuple(draw(st.permutations(shots))))


# --- sending ---------------------------------------------------------------------------


def _path(sale: str, shot: Shot) -> str:
    if shot.sale is None:
        segment = sale
    elif shot.sale == UNKNOWN_SALE:
        segment = f"{sale}-gone"
    elif shot.sale == UPPERCASE_SALE:
        segment = sale.upper()
    else:  # every byte percent-encoded, dots too: no dot segment, no second path segment
        segment = quote(shot.sale.encode("utf-8", "surrogatepass"), safe="").replace(".", "%2E")
    return f"/v1/sales/{segment}/reservations"


def _headers(shot: Shot) -> list[tuple[bytes, bytes]]:
    headers = []
    if shot.authorization is not None:
        headers.append((b"Authorization", shot.authorization))
    if shot.content_type is not None:
        headers.append((b"Content-Type", shot.content_type))
    if shot.key is not None:
        headers.append((b"Idempotency-Key", shot.key))
    return headers


def request_bytes(sale: str, shot: Shot) -> bytes:
    """The whole request as it goes on the wire; a chunked body in chunks of 1000 bytes."""
    lines = [f"POST {_path(sale, shot)} HTTP/1.1".encode(), b"Host: flashsale"]
    lines += [b"Connection: close", *(name + b": " + value for name, value in _headers(shot))]
    body = shot.body or b""
    if shot.chunked:
        lines.append(b"Transfer-Encoding: chunked")
        pieces = [body[at : at + 1000] for at in range(0, len(body), 1000)]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size, _, body = body.partition(b"\r\n")
        length = int(size.split(b";")[0], 16)
        if not length:
            break
        out, body = out + body[:length], body[length + 2 :]
    return out


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    raw = await asyncio.wait_for(reader.read(), 30)  # until the server closes
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    elif "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return Answer(int(status_line.split()[1]), headers.get("content-type", ""), body)


async def fire(base: str, sale: str, shots: tuple[Shot, ...]) -> list[Answer]:
    """Every request of the batch in the same moment: all connections are opened first,
    then every request is written in one go, without yielding to the event loop in
    between, so they reach the API together (an HTTP client library, sending one request
    after another, spreads them over a few milliseconds: the API then decided almost
    every purchase in a script call of its own). Plain sockets also carry the header
    bytes a client library refuses to send."""
    url = urlsplit(base)
    connections = await asyncio.gather(
        *(asyncio.open_connection(url.hostname, url.port) for _ in shots)
    )
    try:
        for (_, writer), shot in zip(connections, shots, strict=True):
            writer.write(request_bytes(sale, shot))
        return list(await asyncio.gather(*(read_answer(reader) for reader, _ in connections)))
    finally:
        for _, writer in connections:
            writer.close()


def reserve_calls(base: str) -> tuple[float, float]:
    """Calls of the reserve script so far, and the purchases they decided (from /metrics)."""
    figures = dict.fromkeys(("_count", "_sum"), 0.0)
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        for suffix in figures:
            if line.startswith(f"flashsale_reserve_call_purchases{suffix} "):
                figures[suffix] += float(line.split()[1])
    return figures["_count"], figures["_sum"]


# --- checking --------------------------------------------------------------------------

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
ACCEPTED_FIELDS = {"order_id", "sale", "quantity", "status", "expires_at", "payment_url"}


def _answer_problem(sale: str, shot: Shot, answer: Answer) -> str | None:
    """What is wrong with one answer taken alone, or None."""
    if answer.status >= 500:
        return f"{answer.status}"
    if shot.bad_header_bytes and answer.status == 400 and not answer.body:
        return None  # the server's own refusal of a header line it cannot parse
    if not answer.content_type.startswith("application/json"):
        return f"not JSON: {answer.content_type!r}"
    doc = answer.parse()
    if not isinstance(doc, dict):
        return "body is not a JSON object"
    if answer.status == 202:
        if shot.kind != "normal":
            return "accepted an odd request"
        if set(doc) != ACCEPTED_FIELDS:
            return f"202 fields {sorted(doc)}"
        if not (
            isinstance(doc["order_id"], str)
            and UUID.match(doc["order_id"])
            and doc["sale"] == sale
            and doc["quantity"] == shot.quantity
            and doc["status"] in ("reserved", "pending_payment")  # see the replay check
            and isinstance(doc["expires_at"], str)
            and RFC3339_Z.match(doc["expires_at"])
            and doc["payment_url"] == f"/v1/orders/{doc['order_id']}/payment"
        ):
            return "202 body does not match the request"
        return None
    if set(doc) != {"error", "detail"} or not isinstance(doc["detail"], str) or not doc["detail"]:
        return f"error body fields {sorted(doc)}"
    allowed = NORMAL_REFUSALS if shot.kind == "normal" else ODD_ANSWERS[shot.kind]
    if (answer.status, doc["error"]) not in allowed:
        return f"{answer.status} {doc['error']} is not an answer for this request"
    return None


def _dead_letters(platform: Platform, sale: str) -> int:
    with platform.sessions() as session:
        count = session.execute(
            text("SELECT count(*) FROM dead_letters WHERE sale = :s"), {"s": sale}
        ).scalar_one()
    return int(count)


def check_batch(
    platform: Platform, api: str, sale: str, batch: Batch, answers: list[Answer]
) -> dict[str, Any]:
    """Check the answers of a batch and the state they left; returns the sale's figures."""
    problems: list[str] = []

    def problem(shot: Shot, answer: Answer, what: str) -> None:
        problems.append(f"{what}: {shot.describe()} -> {answer.status} {answer.body[:160]!r}")

    for shot, answer in zip(batch.shots, answers, strict=True):
        what = _answer_problem(sale, shot, answer)
        event(f"{shot.kind}: {answer.status} {(answer.doc or {}).get('error', '')}".rstrip())
        if what is not None:
            problem(shot, answer, what)
    assert not problems, f"sale {sale}:\n" + "\n".join(problems)

    normal = [(s, a) for s, a in zip(batch.shots, answers, strict=True) if s.kind == "normal"]
    orders: dict[str, tuple[str, int]] = {}  # order id -> (user, quantity)
    by_key: dict[tuple[str, bytes], list[tuple[Shot, Answer]]] = defaultdict(list)
    for shot, answer in normal:
        assert shot.user is not None
        if shot.key is not None:
            by_key[(shot.user, shot.key)].append((shot, answer))
        if answer.status == 202:
            order = answer.doc["order_id"]
            if orders.setdefault(order, (shot.user, shot.quantity)) != (shot.user, shot.quantity):
                problem(shot, answer, "one order id answered to two different purchases")

    # The same key of the same shopper: at most one order; the same quantity, the same
    # answer; `idempotency_key_reused` only when the key bought with another quantity.
    for group in by_key.values():
        accepted = {a.doc["order_id"]: s.quantity for s, a in group if a.status == 202}
        if len(accepted) > 1:
            problem(*group[0], f"one Idempotency-Key made {len(accepted)} orders")
        for shot, answer in group:
            same = [
                (a.status, (a.doc or {}).get("error"))
                for s, a in group
                if s.quantity == shot.quantity
            ]
            if len(set(same)) > 1:
                problem(shot, answer, f"repeats of one request answered differently: {same}")
            if answer.status == 422 and shot.quantity in accepted.values():
                problem(shot, answer, "key reused, but the key bought this very quantity")
            if answer.status == 422 and not accepted:
                problem(shot, answer, "key reused, but the key bought nothing")
            if answer.status == 202 and answer.doc["status"] != "reserved":
                replays = sum(1 for _, a in group if a.status == 202)
                if replays < 2:
                    problem(shot, answer, "a first answer whose status is not reserved")
    for shot, answer in normal:
        if answer.status == 202 and shot.key is None and answer.doc["status"] != "reserved":
            problem(shot, answer, "202 status is not reserved")

    # Every 202 becomes exactly one order row, and nothing else does.
    def sale_doc() -> dict[str, Any]:
        r = httpx.get(f"{api}/v1/sales/{sale}", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    try:
        wait_for(lambda: len(platform.orders(sale)) >= len(orders), timeout=30)
        wait_for(lambda: sale_doc()["stock"]["reserved"] == 0, timeout=30)
    except AssertionError:
        pass  # reported below, with what is missing
    rows = {str(row["id"]): row for row in platform.orders(sale)}
    for order in orders.keys() - rows.keys():
        problems.append(f"202 without an order row: {order} {orders[order][0][:40]!r}")
    for order in rows.keys() - orders.keys():
        problems.append(f"order row without a 202: {rows[order]}")
    held: dict[str, int] = defaultdict(int)
    for order, row in rows.items():
        held[row["user_id"]] += row["quantity"]
        if order in orders and (row["user_id"], row["quantity"]) != orders[order]:
            problems.append(f"order row {order} is not the purchase answered: {row}")
        if row["status"] != "pending_payment":
            problems.append(f"order row {order} is {row['status']}")
    for user, units in held.items():
        if units > batch.per_user_limit:
            problems.append(f"{user[:40]!r} holds {units} > {batch.per_user_limit}")

    # The figures add up at rest, and odd requests took nothing.
    figures = sale_doc()["stock"]
    taken = sum(quantity for _, quantity in orders.values())
    if figures["total"] != batch.stock:
        problems.append(f"total {figures['total']} != {batch.stock}")
    if (
        figures["paid"] + figures["pending_payment"] + figures["reserved"] + figures["remaining"]
        != figures["total"]
        or figures["remaining"] != batch.stock - taken
    ):
        problems.append(f"figures {figures} do not add up with {taken} units answered 202")
    if _dead_letters(platform, sale):
        problems.append("the sale has dead letters")

    # Refusals of normal shoppers, proven by the final state: units only ever went down and
    # holdings only up during the batch, so the end shows the most there ever was.
    for shot, answer in normal:
        error = (answer.doc or {}).get("error")
        if error == "sold_out" and figures["remaining"] >= shot.quantity:
            problem(shot, answer, f"sold out while {figures['remaining']} units are left")
        if (
            error == "limit_reached"
            and held[shot.user or ""] + shot.quantity <= batch.per_user_limit
        ):
            problem(shot, answer, "limit reached, but the shopper's orders leave room")
    assert not problems, f"sale {sale}:\n" + "\n".join(problems)
    return figures


def check_replays(
    platform: Platform,
    api: str,
    sale: str,
    first: list[tuple[Shot, Answer]],
    again: list[Answer],
    figures: dict[str, Any],
) -> None:
    """The same requests once more, after the orders were stored: a key that bought
    answers its order again and takes nothing; a refusal stays a refusal; odd requests
    are refused as before; nothing in SQL or in the figures moves."""
    problems = []
    rows = {str(row["id"]): row for row in platform.orders(sale)}
    for (shot, before), answer in zip(first, again, strict=True):
        what = _answer_problem(sale, shot, answer)
        if what is None and shot.kind == "normal":
            if before.status == 202:
                same = answer.status == 202 and answer.doc["order_id"] == before.doc["order_id"]
                if not same:
                    what = f"the key bought {before.doc['order_id']} and now answers otherwise"
                else:
                    event(f"replay after storing: status {answer.doc['status']}")
            elif answer.status == 202:
                what = f"refused first ({before.status}), accepted when repeated"
        if what is not None:
            problems.append(f"{what}: {shot.describe()} -> {answer.status} {answer.body[:160]!r}")
    if {str(row["id"]): row for row in platform.orders(sale)} != rows:
        problems.append("order rows changed")
    r = httpx.get(f"{api}/v1/sales/{sale}", timeout=10)
    if r.json()["stock"] != figures:
        problems.append(f"figures moved from {figures} to {r.json()['stock']}")
    if _dead_letters(platform, sale):
        problems.append("the sale has dead letters")
    assert not problems, f"sale {sale}, repeated requests:\n" + "\n".join(problems)


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example is a real sale
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)
@given(batch=batches())
def test_odd_requests_never_change_other_shoppers_answers_or_orders(
    platform: Platform, api: str, worker: Any, batch: Batch
) -> None:
    sale = platform.sale(stock=batch.stock, perUserLimit=batch.per_user_limit)
    calls, purchases = reserve_calls(api)
    # A loop of its own per example: the session's loop is not reentrant from here.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        answers = runner.run(fire(api, sale, batch.shots))
        calls_after, purchases_after = reserve_calls(api)
        if purchases_after - purchases > calls_after - calls:
            event("a reserve call decided several purchases of the batch")
        figures = check_batch(platform, api, sale, batch, answers)
        # Then the requests a repeat must not change: keyed purchases and odd requests.
        first = [
            (shot, answer)
            for shot, answer in zip(batch.shots, answers, strict=True)
            if shot.kind != "normal" or shot.key is not None
        ]
        again = runner.run(fire(api, sale, tuple(shot for shot, _ in first)))
    check_replays(platform, api, sale, first, again, figures)


def test_odd_user_ids_in_the_same_moment_as_sixty_buyers(
    platform: Platform, api: str, worker: Any
) -> None:
    """The outside probe: 60 buyers and, in the same instant, a lone surrogate, a NUL and
    a control character as `sub`. Once the surrogate failed the Redis call it shared with
    buyers (their answers were 500), and the NUL was accepted and made a task message
    that could not be stored, holding back the orders of the buyers it shared it with."""
    buyers = 60
    sale = platform.sale(stock=buyers + 3, perUserLimit=1)
    users = [f"probe-buyer-{i}-{uuid.uuid4().hex[:6]}" for i in range(buyers)]
    shots = [Shot("normal", f"Bearer {token_for(u)}".encode(), user=u) for u in users]
    odd_subs = ["\ud800", "al\x00ice", "\x1b[31mred"]
    for at, sub in zip((0, 30, 60), odd_subs, strict=True):  # among the buyers
        shots.insert(at, Shot("bad_user", f"Bearer {token_for(sub)}".encode(), note=repr(sub)))
    calls_before, purchases_before = reserve_calls(api)
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        answers = runner.run(fire(api, sale, tuple(shots)))
    calls_after, purchases_after = reserve_calls(api)
    calls, purchases = calls_after - calls_before, purchases_after - purchases_before

    by_kind = defaultdict(list)
    for shot, answer in zip(shots, answers, strict=True):
        by_kind[shot.kind].append((answer.status, answer.parse()))
    assert [(status, doc.get("error")) for status, doc in by_kind["bad_user"]] == [
        (401, "unauthorized")
    ] * 3, by_kind["bad_user"]
    assert [status for status, _ in by_kind["normal"]] == [202] * buyers, by_kind["normal"]
    # The buyers were decided together, several to a script call, as the probe had them.
    assert calls < purchases, (calls, purchases)
    accepted = {doc["order_id"]: u for (_, doc), u in zip(by_kind["normal"], users, strict=True)}
    wait_for(lambda: len(platform.orders(sale)) == buyers, timeout=30)
    assert {str(row["id"]): row["user_id"] for row in platform.orders(sale)} == accepted
    assert platform.remaining(sale) == 3
    assert _dead_letters(platform, sale) == 0
