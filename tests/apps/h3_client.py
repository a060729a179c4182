"""An HTTP/3 client on aioquic (an independent QUIC and HTTP/3 implementation), for the tests.

Makes one or more requests over one QUIC connection and prints one JSON object per request:
status, headers, body length and SHA-256, the body as text when it is short, and when each
DATA chunk arrived (seconds after the response head), so streaming can be judged.

    h3_client.py --port P --name test.example --ca ca.crt [--path /a --path /b]
                 [--method POST --body-bytes 3145728] [--header 'range: bytes=0-9']
                 [--cert client.crt --key client.key] [--timeout 10] [--pause 2]

Exit code 0 when every request got a response, 2 when the connection failed (the error is
printed as {"error": ...}).
"""

import argparse
import asyncio
import hashlib
import json
import sys
import time

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamReset
from cryptography.hazmat.primitives import serialization


class Response:
    def __init__(self):
        self.done = asyncio.get_running_loop().create_future()
        self.headers = []
        self.body = bytearray()
        self.chunks = []
        self.head_at = None


class H3Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic)
        self.responses = {}
        self.terminated = None

    def quic_event_received(self, event):
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
            for r in self.responses.values():
                if not r.done.done():
                    r.done.set_exception(
                        ConnectionError(f"connection closed: {event.error_code} {event.reason_phrase}")
                    )
        if isinstance(event, StreamReset) and event.stream_id in self.responses:
            r = self.responses[event.stream_id]
            if not r.done.done():
                r.done.set_exception(ConnectionError(f"stream reset: {event.error_code}"))
        for ev in self.http.handle_event(event):
            r = self.responses.get(getattr(ev, "stream_id", None))
            if r is None:
                continue
            if isinstance(ev, HeadersReceived):
                if r.head_at is None:
                    r.head_at = time.monotonic()
                    r.headers = [(k.decode(), v.decode()) for k, v in ev.headers]
            elif isinstance(ev, DataReceived):
                if ev.data:
                    r.body.extend(ev.data)
                    r.chunks.append(
                        [round(time.monotonic() - (r.head_at or time.monotonic()), 4), len(ev.data),
                         ev.data[:200].decode("utf-8", "replace")]
                    )
            if getattr(ev, "stream_ended", False) and not r.done.done():
                r.done.set_result(None)

    async def request(self, method, authority, path, headers, body):
        if self.terminated is not None:
            t = self.terminated
            raise ConnectionError(f"connection closed: {t.error_code} {t.reason_phrase}")
        stream_id = self._quic.get_next_available_stream_id()
        r = Response()
        self.responses[stream_id] = r
        fields = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            (b"user-agent", b"aioquic-test"),
        ] + [(k.encode(), v.encode()) for k, v in headers]
        self.http.send_headers(stream_id, fields, end_stream=not body)
        if body:
            self.http.send_data(stream_id, body, end_stream=True)
        self.transmit()
        await r.done
        status = next((int(v) for k, v in r.headers if k == ":status"), None)
        peer = getattr(self._quic.tls, "_peer_certificate", None)
        peer_der = peer.public_bytes(serialization.Encoding.DER) if peer is not None else b""
        text = bytes(r.body)
        return {
            "status": status,
            "headers": {k: v for k, v in r.headers if not k.startswith(":")},
            "body_len": len(text),
            "body_sha256": hashlib.sha256(text).hexdigest(),
            "body": text.decode("utf-8", "replace") if len(text) <= 65536 else None,
            "chunks": r.chunks,
            "peer_cert_sha256": hashlib.sha256(peer_der).hexdigest() if peer_der else None,
        }


def body_of(n):
    """n bytes of the pattern the test upstream checks (byte i is i % 253)."""
    pattern = bytes(range(253))
    return (pattern * (n // 253 + 1))[:n]


async def run(args):
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=args.name)
    config.load_verify_locations(args.ca)
    if args.cert:
        config.load_cert_chain(args.cert, args.key)
    headers = []
    for h in args.header:
        k, _, v = h.partition(":")
        headers.append((k.strip().lower(), v.strip()))
    body = body_of(args.body_bytes) if args.body_bytes else b""
    if body:
        headers.append(("content-length", str(len(body))))
    authority = args.authority or f"{args.name}:{args.port}"
    async with connect(
        args.connect, args.port, configuration=config, create_protocol=H3Client, wait_connected=True
    ) as client:
        for i, path in enumerate(args.path or ["/"]):
            if i > 0 and args.pause:
                await asyncio.sleep(args.pause)
            result = await client.request(args.method, authority, path, headers, body)
            print(json.dumps(result), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--name", required=True, help="SNI and certificate name")
    p.add_argument("--authority", help=":authority (default NAME:PORT)")
    p.add_argument("--connect", default="127.0.0.1")
    p.add_argument("--ca", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--method", default="GET")
    p.add_argument("--path", action="append")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--body-bytes", type=int, default=0)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--pause", type=float, default=0.0, help="seconds between requests")
    args = p.parse_args()
    try:
        asyncio.run(asyncio.wait_for(run(args), args.timeout))
    except Exception as e:  # the test reads the reason
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
