#!/usr/bin/env python3
"""Floods one HTTP/2 connection (TLS, ALPN h2) to 127.0.0.1:PORT with frames a client may
write but a server must bound, standard library only (frames by hand). Loopback only, bounded
in bytes and seconds. Prints one line: what was sent, the GOAWAY seen (code name) or None,
and whether the server closed.

  h2_floods.py continuation PORT   HEADERS without END_HEADERS, then 16 KiB CONTINUATIONs
                                   (up to 8 MiB): the server must end it long before
  h2_floods.py ping PORT [HOLD]    PINGs (up to 2,000,000, 34 MB) without reading a byte of
                                   the answers, then holding the connection HOLD seconds: the
                                   server must stop reading, not buffer the answers
"""
import socket, ssl, struct, sys, time

mode, port = sys.argv[1], int(sys.argv[2])
NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 6: "FRAME_SIZE_ERROR", 9: "COMPRESSION_ERROR",
         11: "ENHANCE_YOUR_CALM"}

def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost")
assert s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol()
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b""))

def goaway_in(data):
    """The GOAWAY code in the frames of `data`, if any (frames cut at the end are ignored)."""
    at = 0
    while at + 9 <= len(data):
        length = int.from_bytes(data[at:at + 3], "big")
        kind = data[at + 3]
        payload = data[at + 9:at + 9 + length]
        if kind == 7 and len(payload) >= 8:
            code = int.from_bytes(payload[4:8], "big")
            return NAMES.get(code, code)
        at += 9 + length
    return None

sent, closed, deadline = 0, False, time.time() + 20
if mode == "continuation":
    # :method GET, :scheme https, :path /, then a literal name "x" with 16 KiB values, forever.
    s.sendall(frame(1, 0, 1, bytes([0x82, 0x87, 0x84])))
    value = b"v" * 16000
    # Length 16000 as a 7-bit-prefix integer: 127, then 15873 as 0x81 0x7c.
    assert 127 + (0x81 & 0x7f) + (0x7c << 7) == 16000
    block = bytes([0x00, 0x01, ord("x"), 0x7f, 0x81, 0x7c]) + value
    chunk = frame(9, 0, 1, block)
    try:
        while sent < 8 << 20 and time.time() < deadline:
            s.sendall(chunk)
            sent += len(block)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
        closed = True
elif mode == "ping":
    batch = frame(6, 0, 0, b"12345678") * 1000
    s.settimeout(2)
    try:
        while sent < 2_000_000 and time.time() < deadline:
            s.sendall(batch)
            sent += 1000
    except (socket.timeout, BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
        # The server stopped reading: its answers wait for us, not in its memory.
        pass
    print(f"sent={sent}", flush=True)
    time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0)
    sys.exit(0)
else:
    sys.exit(f"unknown mode {mode}")

got = b""
s.settimeout(3)
try:
    while True:
        d = s.recv(65536)
        if not d:
            closed = True
            break
        got += d
except (socket.timeout, ssl.SSLError, OSError):
    pass
print(f"sent={sent} goaway={goaway_in(got)} closed={closed}")
