"""Times single 4 KiB guest reads on a relocating proxy with libnbd (Debian's /usr/bin/python3, module nbd).

usage: read_latency.py URI LABEL REP OUT_TSV [MISSES=150] [LOCAL_PER_MISS=5] [SEED=1]

Pattern: MISSES rounds; each reads 4 KiB from a block never read before (a miss: the proxy must fetch it from
the source), then LOCAL_PER_MISS reads of 4 KiB from blocks an earlier round made local. Miss offsets go
*down* from the end of the disk to its middle, evenly spaced with jitter: the prefetcher copies from the
start of the disk and, after each miss, from just after the missed block upwards, so every block it has
made local lies above the latest miss or near the start, never on a later (lower) miss. Reads are 4 KiB
aligned at a random place inside their 64 KiB block. Appends one row per read to OUT_TSV:
label rep kind seq offset latency_ms t_s (seconds since the first read).
"""
import os, random, sys, time

import nbd

uri, label, rep, out = sys.argv[1:5]
misses = int(sys.argv[5]) if len(sys.argv) > 5 else 150
local_per_miss = int(sys.argv[6]) if len(sys.argv) > 6 else 5
rng = random.Random(int(sys.argv[7]) if len(sys.argv) > 7 else 1)
BLOCK, READ = 64 << 10, 4096

h = nbd.NBD()
h.connect_uri(uri)
size = h.get_size()
blocks = size // BLOCK
top, bottom = blocks - 2, blocks // 2
step = (top - bottom) / misses
miss_blocks = [int(top - i * step - rng.random() * step / 2) for i in range(misses)]
assert len(set(miss_blocks)) == misses and all(b >= bottom for b in miss_blocks)

def at(block):
    return block * BLOCK + rng.randrange(BLOCK // READ) * READ

rows, done, start = [], [], time.perf_counter()
def timed(kind, seq, offset):
    t = time.perf_counter()
    h.pread(READ, offset)
    rows.append(f"{label}\t{rep}\t{kind}\t{seq}\t{offset}\t{(time.perf_counter() - t) * 1e3:.3f}\t{t - start:.3f}\n")

for i, b in enumerate(miss_blocks):
    timed("miss", i, at(b))
    done.append(b)
    for j in range(local_per_miss):
        timed("local", i * local_per_miss + j, at(rng.choice(done)))
h.shutdown()
new = not os.path.exists(out) or os.path.getsize(out) == 0
with open(out, "a") as f:
    if new:
        f.write("label\trep\tkind\tseq\toffset\tlatency_ms\tt_s\n")
    f.writelines(rows)
print(f"{label} rep {rep}: {misses} misses, {misses * local_per_miss} local reads in {time.perf_counter() - start:.1f} s", file=sys.stderr)
