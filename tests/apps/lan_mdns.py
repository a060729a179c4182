"""Resolves candado's `--lan` mDNS announcement the way a phone does: the `HOST.local` address
records and the `_https._tcp` service. Prints one JSON object; exits 1 when nothing answers.

usage: lan_mdns.py HOST [TIMEOUT_SECONDS]
"""
import json
import sys

from zeroconf import AddressResolver, Zeroconf

host = sys.argv[1]
timeout_ms = int(float(sys.argv[2] if len(sys.argv) > 2 else 5) * 1000)
zc = Zeroconf()
try:
    resolver = AddressResolver(f"{host}.local.")
    found = resolver.request(zc, timeout_ms)
    addresses = resolver.parsed_scoped_addresses() if found else []
    service = zc.get_service_info(
        "_https._tcp.local.", f"candado on {host}._https._tcp.local.", timeout=timeout_ms
    )
    out = {
        "addresses": addresses,
        "service": None
        if service is None
        else {
            "server": service.server,
            "port": service.port,
            "addresses": service.parsed_scoped_addresses(),
        },
    }
    print(json.dumps(out))
    sys.exit(0 if addresses else 1)
finally:
    zc.close()
