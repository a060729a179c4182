"""WebSocket client for the tests: text, 1 MiB binary, ping, clean close, through wss://.

usage: ws_client.py URL CA_FILE SERVER_NAME
"""
import ssl
import sys

from websockets.sync.client import connect

url, ca, name = sys.argv[1:4]
ctx = ssl.create_default_context(cafile=ca)
with connect(url, ssl=ctx, server_hostname=name, max_size=None, open_timeout=10, close_timeout=5) as ws:
    ws.send("hello")
    assert ws.recv(timeout=10) == "hello"
    blob = bytes(range(256)) * 4096
    ws.send(blob)
    assert ws.recv(timeout=10) == blob
    ws.ping().wait(timeout=10)
    ws.close()
    assert ws.close_code == 1000, ws.close_code
print("websocket ok")
