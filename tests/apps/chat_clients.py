"""Two chat clients as the seed's Python chat client writes them (socket + ssl), but verifying
the server as its security notes advise (load_verify_locations instead of CERT_NONE) and
presenting a client certificate. bob joins, alice says a line, bob prints what he hears.

Usage: chat_clients.py PORT SERVER_NAME CA ALICE_CERT ALICE_KEY BOB_CERT BOB_KEY
"""
import socket
import ssl
import sys
import time

port, name, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]


def connect(cert, key):
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.load_verify_locations(ca)
    context.load_cert_chain(cert, key)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname=name)


bob = connect(sys.argv[6], sys.argv[7])
alice = connect(sys.argv[4], sys.argv[5])
time.sleep(0.3)  # both joined the chat before anyone speaks
alice.sendall(b"hola desde python\n")
heard = b""
while not heard.endswith(b"\n"):
    chunk = bob.recv(1024)
    if not chunk:
        break
    heard += chunk
print(heard.decode().strip())
print(bob.version(), alice.getpeercert()["subject"])
