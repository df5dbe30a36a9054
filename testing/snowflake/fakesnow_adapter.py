"""fakesnow, answering as Snowflake does for a JSON-rowset client (test tooling; never used in production).

Run with the venv that .ci/setup.d/30-fakesnow.sh installs:
    /opt/millionx/venv/bin/python fakesnow_adapter.py --port 8123 [--db-dir DIR]

Where fakesnow 0.12 differs from Snowflake, this ASGI wrapper around `fakesnow.server.app` closes the gap:
- login: a request without SESSION_PARAMETERS is accepted (fakesnow needs the key); statements fakesnow cannot
  parse but Snowflake accepts (warehouses, roles, grants, ...) become no-ops through fakesnow's `nop_regexes`.
- query results: Arrow `rowsetBase64` becomes a JSON `rowset` (what Snowflake sends a client that does not
  announce Arrow support), with Snowflake's JSON cell encodings.
- errors: the body carries `data.queryId` and a top-level `sqlState`, as Snowflake's do; a NOT NULL violation
  is Snowflake's 100072 rather than an HTTP 500.
- concurrency: Snowflake runs statements of one session concurrently; fakesnow's per-session DuckDB cursor
  refuses a second call while one runs, so statements of a session are queued here instead.
- storage: with --db-dir every database lives in a DuckDB file there, so data survives a restart of this
  process (Snowflake keeps data when a client loses its connection).
- SNOWFLAKE.ACCOUNT_USAGE.WAREHOUSE_METERING_HISTORY exists (empty), as in every Snowflake account.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import decimal
import gzip
import json
import logging
import uuid

import duckdb
import pyarrow as pa
import snowflake.connector.errors
import uvicorn

import fakesnow.server as fs_server
from fakesnow.cursor import FakeSnowflakeCursor
from fakesnow.instance import FakeSnow

NOP_REGEXES = [
    r"^\s*GRANT\s",
    r"^\s*REVOKE\s",
    r"^\s*CREATE\s+(OR\s+REPLACE\s+)?(WAREHOUSE|ROLE|USER|STREAM|TASK|PIPE)\s",
    r"^\s*ALTER\s+(WAREHOUSE|USER|ROLE)\s",
    r"^\s*USE\s+(WAREHOUSE|ROLE)\s",
    r"^\s*COMMENT\s+(IF\s+EXISTS\s+)?ON\s+COLUMN\s",
]

ACCOUNT_USAGE_DDL = [
    "CREATE DATABASE IF NOT EXISTS SNOWFLAKE",
    "CREATE SCHEMA IF NOT EXISTS SNOWFLAKE.ACCOUNT_USAGE",
    """CREATE TABLE IF NOT EXISTS SNOWFLAKE.ACCOUNT_USAGE.WAREHOUSE_METERING_HISTORY (
         START_TIME TIMESTAMP_TZ, END_TIME TIMESTAMP_TZ, WAREHOUSE_ID NUMBER(38,0), WAREHOUSE_NAME VARCHAR,
         CREDITS_USED NUMBER(38,9), CREDITS_USED_COMPUTE NUMBER(38,9), CREDITS_USED_CLOUD_SERVICES NUMBER(38,9))""",
]

log = logging.getLogger("fakesnow_adapter")


def _patch_constraint_errors() -> None:
    """A NOT NULL violation is a Snowflake data error (100072), not a server fault."""
    original = FakeSnowflakeCursor._execute  # noqa: SLF001

    def _execute(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return original(self, *args, **kwargs)
        except duckdb.ConstraintException as e:
            msg = str(e).split("\n")[0]
            raise snowflake.connector.errors.ProgrammingError(
                msg=f"NULL result in a non-nullable column ({msg})", errno=100072, sqlstate="22000"
            ) from e

    FakeSnowflakeCursor._execute = _execute  # type: ignore[method-assign]  # noqa: SLF001


def _fraction_str(epoch: int, fraction: int) -> str:
    return f"{epoch}.{fraction:09d}"


def _cell(value, sf_type: str, scale: int | None) -> str | None:  # type: ignore[no-untyped-def]
    """One value in Snowflake's JSON rowset encoding (every cell is a string or null)."""
    if value is None:
        return None
    if sf_type == "boolean":
        return "1" if value else "0"
    if sf_type == "fixed":
        if isinstance(value, decimal.Decimal):
            return format(value, "f")
        return str(value)
    if sf_type == "real":
        return repr(float(value))
    if sf_type in ("timestamp_ntz", "timestamp_ltz"):
        return _fraction_str(value["epoch"], value["fraction"])
    if sf_type == "timestamp_tz":
        # seconds.nanoseconds, then the offset in minutes plus 1440 (the Snowflake JSON wire form)
        return f"{_fraction_str(value['epoch'], value['fraction'])} {value.get('timezone', 1440)}"
    if sf_type == "date":
        return str((value - __import__("datetime").date(1970, 1, 1)).days)
    if sf_type == "time":
        ns = int(value)
        return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"
    if sf_type == "binary":
        return bytes(value).hex().upper()
    if sf_type in ("variant", "object", "array"):
        return value if isinstance(value, str) else json.dumps(value)
    return str(value)


def arrow_to_json_rowset(b64: str, rowtype: list[dict]) -> list[list[str | None]]:
    if not b64:
        return []
    reader = pa.ipc.open_stream(base64.b64decode(b64))
    table = reader.read_all()
    columns = [c.to_pylist() for c in table.columns]
    types = [(rt["type"], rt.get("scale")) for rt in rowtype]
    return [[_cell(v, t, s) for v, (t, s) in zip(row, types)] for row in zip(*columns)]


def rewrite_login(body: bytes) -> bytes:
    doc = json.loads(body)
    data = doc.setdefault("data", {})
    params = data.get("SESSION_PARAMETERS") or {}
    params.setdefault("nop_regexes", NOP_REGEXES)
    data["SESSION_PARAMETERS"] = params
    return json.dumps(doc).encode()


def rewrite_query_response(body: bytes) -> bytes:
    doc = json.loads(body)
    data = doc.get("data")
    if doc.get("success") is False:
        if isinstance(data, dict):
            data.setdefault("queryId", str(uuid.uuid4()))
            if "sqlState" in data:
                doc.setdefault("sqlState", data["sqlState"])
        else:
            doc["data"] = {"queryId": str(uuid.uuid4()), "errorCode": doc.get("code")}
        return json.dumps(doc).encode()
    if isinstance(data, dict):
        data.setdefault("queryId", str(uuid.uuid4()))
        if data.get("queryResultFormat") == "arrow":
            data["rowset"] = arrow_to_json_rowset(data.pop("rowsetBase64", ""), data.get("rowtype") or [])
            data["queryResultFormat"] = "json"
            data["returned"] = len(data["rowset"])
    return json.dumps(doc).encode()


class Adapter:
    """ASGI middleware: rewrites login requests and query responses, passes everything else through."""

    def __init__(self, app):  # type: ignore[no-untyped-def]
        self.app = app
        self.session_locks: dict[bytes, asyncio.Lock] = {}

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == "/session/v1/login-request":
            body = await _read_body(receive)
            headers = dict(scope.get("headers") or [])
            if headers.get(b"content-encoding") == b"gzip":
                body = gzip.decompress(body)
            body = rewrite_login(body)
            scope = dict(scope)
            scope["headers"] = [
                (k, v) for k, v in scope.get("headers") or [] if k not in (b"content-encoding", b"content-length")
            ] + [(b"content-length", str(len(body)).encode())]
            await self.app(scope, _replay(body), send)
        elif path == "/queries/v1/query-request":
            token = dict(scope.get("headers") or []).get(b"authorization", b"")
            lock = self.session_locks.setdefault(token, asyncio.Lock())
            async with lock:
                await self.app(scope, receive, _BufferedSend(send, rewrite_query_response))
        else:
            await self.app(scope, receive, send)


async def _read_body(receive) -> bytes:  # type: ignore[no-untyped-def]
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes):  # type: ignore[no-untyped-def]
    sent = False

    async def receive():  # type: ignore[no-untyped-def]
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class _BufferedSend:
    def __init__(self, send, rewrite):  # type: ignore[no-untyped-def]
        self.send = send
        self.rewrite = rewrite
        self.start = None
        self.chunks: list[bytes] = []

    async def __call__(self, message):  # type: ignore[no-untyped-def]
        if message["type"] == "http.response.start":
            self.start = message
            return
        if message["type"] != "http.response.body":
            await self.send(message)
            return
        self.chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(self.chunks)
        try:
            body = self.rewrite(body)
        except Exception:  # an unparsable body is passed on as fakesnow produced it
            log.exception("could not rewrite a query response")
        start = dict(self.start or {"type": "http.response.start", "status": 200, "headers": []})
        start["headers"] = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"] + [
            (b"content-length", str(len(body)).encode())
        ]
        await self.send(start)
        await self.send({"type": "http.response.body", "body": body, "more_body": False})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db-dir", help="keep databases in DuckDB files here (survive restarts)")
    args = parser.parse_args()

    _patch_constraint_errors()
    if args.db_dir:
        fs_server.shared_fs = FakeSnow(db_path=args.db_dir)
    with fs_server.shared_fs.connect(nop_regexes=NOP_REGEXES) as conn:
        cur = conn.cursor()
        if args.db_dir:
            # re-attach databases kept from an earlier run so fully qualified names resolve at once
            import os

            for name in sorted(os.listdir(args.db_dir)):
                if name.endswith(".db") and name[:-3].upper() != "SNOWFLAKE":
                    cur.execute(f"CREATE DATABASE IF NOT EXISTS {name[:-3]}")
        for ddl in ACCOUNT_USAGE_DDL:
            cur.execute(ddl)
    uvicorn.run(Adapter(fs_server.app), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
