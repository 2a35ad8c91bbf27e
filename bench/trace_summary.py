#!/usr/bin/env python3
"""Summaries of a dotnet-trace thread-time profile exported to speedscope JSON
(dotnet-trace convert --format Speedscope FILE.nettrace), beyond `dotnet-trace report topN`:

  trace_summary.py onstack FILE PAT1,PAT2,...   thread-milliseconds with a frame matching each pattern on the stack
  trace_summary.py threads FILE [MARK]          per thread, where its time went while a frame matching MARK
                                                (default Prefetcher) was on any stack; UNMA = native code or blocked
  trace_summary.py callers FILE TARGET          the callers of frames matching TARGET, by thread-milliseconds

Used for issue 13's profiles (docs/data/issue13/t5/dotnet-trace-netns.txt)."""
import collections, json, sys


def intervals(profile):
    """(start, end, stack of frame indices) for every stretch of an evented profile."""
    stack, prev = [], None
    for e in profile["events"]:
        t = e["at"]
        if prev is not None and stack and t > prev:
            yield prev, t, list(stack)
        prev = t
        if e["type"] == "O":
            stack.append(e["frame"])
        else:
            stack.pop()


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    d = json.load(open(path))
    frames = [f["name"] for f in d["shared"]["frames"]]
    if cmd == "onstack":
        pats = sys.argv[3].split(",")
        on = collections.Counter()
        for p in d["profiles"]:
            for a, b, st in intervals(p):
                names = [frames[i] for i in st]
                for q in pats:
                    if any(q in n for n in names):
                        on[q] += b - a
        for k, v in on.most_common():
            print(f"{v:9.0f}  {k}")
    elif cmd == "threads":
        mark = sys.argv[3] if len(sys.argv) > 3 else "Prefetcher"
        spans = [(a, b) for p in d["profiles"] for a, b, st in intervals(p) if any(mark in frames[i] for i in st)]
        lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
        print(f"{mark} on a stack from {lo:.0f} to {hi:.0f} ms ({hi - lo:.0f} ms)")
        keys = ("Reloc.", "Akka", "Sqlite", "DotNetty", "Socket", "PWrite", "fdatasync", "Wait", "Sleep", "Dispatch")
        for p in d["profiles"]:
            c = collections.Counter()
            for a, b, st in intervals(p):
                a, b = max(a, lo), min(b, hi)
                if b <= a:
                    continue
                names = [frames[i] for i in st]
                key = next((n.split("!")[-1][:80] for n in reversed(names) if any(k in n for k in keys)), None)
                c[(names[-1][:4], key)] += b - a
            top = " | ".join(f"{k[0]}:{k[1]} {v:.0f}" for k, v in c.most_common(4))
            print(f"{p['name']:14s} {sum(c.values()):7.0f}  {top}")
    elif cmd == "callers":
        target = sys.argv[3]
        c = collections.Counter()
        for p in d["profiles"]:
            for a, b, st in intervals(p):
                names = [frames[i] for i in st]
                for k, n in enumerate(names):
                    if target in n:
                        chain = " <- ".join(x.split("!")[-1][:70] for x in reversed(names[max(0, k - 6):k]))
                        c[(p["name"], chain)] += b - a
                        break
        for (thread, chain), v in c.most_common(8):
            print(f"{v:8.0f} ms {thread}: {chain[:400]}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
