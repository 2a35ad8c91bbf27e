"""Times a guest's first contact with an NBD export, cold: the first connection (TCP + handshake, as libnbd's
connect_uri does it) and then READS single 4 KiB reads, each at a place no read touched before.

usage: first_contact.py URI LABEL REP OUT_TSV [READS=3] [SEED=1]
Appends one row per step to OUT_TSV: label rep step ms   (step = connect, read1, read2, ...).
Run it against a server nothing has connected to yet: that is the point.
"""
import random, sys, time

import nbd

uri, label, rep, out = sys.argv[1:5]
reads = int(sys.argv[5]) if len(sys.argv) > 5 else 3
rng = random.Random(int(sys.argv[6]) if len(sys.argv) > 6 else 1)
rows = []
t = time.perf_counter()
h = nbd.NBD()
h.set_uri_allow_local_file(True)  # nbds://...?tls-certificates=DIR reads that folder
h.connect_uri(uri)
rows.append(("connect", (time.perf_counter() - t) * 1e3))
size = h.get_size()
# Far apart, in different 4 MiB regions, so no read is served by an earlier one's fetch or prefetch.
regions = rng.sample(range(1, size // (4 << 20)), reads)
for i, region in enumerate(regions, 1):
    offset = region * (4 << 20) + rng.randrange(1024) * 4096
    t = time.perf_counter()
    h.pread(4096, offset)
    rows.append((f"read{i}", (time.perf_counter() - t) * 1e3))
h.shutdown()
with open(out, "a") as f:
    for step, ms in rows:
        f.write(f"{label}\t{rep}\t{step}\t{ms:.3f}\n")
print(" ".join(f"{s}={ms:.1f}ms" for s, ms in rows))
