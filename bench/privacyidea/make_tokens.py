#!/usr/bin/env python3
"""Makes N TOTP tokens for privacyIDEA with random seeds, and the wrk request file.

    make_tokens.py N STEPS TOKENS_CSV REQUESTS_FILE

TOKENS_CSV is privacyIDEA's OATH CSV import format (`serial, hexkey, totp, 6, 30`),
for POST /token/load. REQUESTS_FILE has the format bench/wrk/answer.lua reads, the same
as `twofa-bench --serve` writes: `serial firstStep code...`, the RFC 6238 codes (SHA1,
6 digits, 30 s) of STEPS steps from the current one. Both files are readable by their
owner only. Standard library only.
"""

import hashlib
import hmac
import os
import struct
import sys
import time


def totp(key: bytes, step: int) -> str:
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return "%06d" % (value % 1_000_000)


def private(path: str):
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w")


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    n, steps = int(sys.argv[1]), int(sys.argv[2])
    first = int(time.time()) // 30
    with private(sys.argv[3]) as csv, private(sys.argv[4]) as requests:
        for i in range(n):
            key = os.urandom(20)
            serial = "BENCH%06d" % i
            csv.write("%s, %s, totp, 6, 30\n" % (serial, key.hex()))
            codes = " ".join(totp(key, s) for s in range(first, first + steps))
            requests.write("%s %d %s\n" % (serial, first, codes))


if __name__ == "__main__":
    main()
