#!/usr/bin/env python3
# Opens N HTTP/2 connections (TLS, ALPN h2) to 127.0.0.1:PORT, one GET /index.html each, then
# holds them idle for HOLD seconds; prints READY once all are open. Standard library only: the
# frames and the HPACK block are written by hand (static-table indexes, no Huffman).
#   bench/h2idle.py N PORT HOLD        (bench/profile.sh idle-h2 runs it)
import asyncio, ssl, struct, sys
N = int(sys.argv[1]); port = int(sys.argv[2]); hold = float(sys.argv[3])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"])
def frame(t, flags, sid, payload): return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid) + payload
hdr = bytes([0x82, 0x87, 0x04, 11]) + b"/index.html" + bytes([0x01, 9]) + b"localhost"
msg = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") + frame(1, 5, 1, hdr)
conns = []
async def one():
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    assert w.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
    w.write(msg); await w.drain()
    got = b""
    while len(got) < 1024:  # SETTINGS, HEADERS and the 1 KiB file
        chunk = await r.read(65536)
        if not chunk:
            raise ConnectionError("closed before the response")
        got += chunk
    w.write(frame(4, 1, 0, b"")); await w.drain()  # ack their settings
    conns.append((r, w))
async def main():
    sem = asyncio.Semaphore(100)
    async def guarded():
        async with sem: await one()
    await asyncio.gather(*(guarded() for _ in range(N)))
    print("READY", len(conns), flush=True)
    await asyncio.sleep(hold)
asyncio.run(main())
