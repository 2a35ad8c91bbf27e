"""One proxy run's figures from its stamped progress lines (bench/lib.sh start_proxy: "EPOCH<TAB>JSON" per line).

usage: proxy_run.py JSONL T0 T_LINE T_CLOSE LIMIT_S LABEL REP RUNS_TSV TIMELINE_TSV
Appends one row to RUNS_TSV (header written if the file is new or empty) and the run's progress lines to
TIMELINE_TSV. Times are seconds since T0 (the proxy launch). Window and rate are medians over the lines
printed while relocating with data flowing (the first rate sample, partly before any data, is left out).
"""
import json, os, statistics as st, sys

path, t0, tline, tclose, limit, label, rep, runs, tl = sys.argv[1:]
t0, tline, tclose, limit = map(float, (t0, tline, tclose, limit))
rows = []
for line in open(path):
    ts, js = line.rstrip("\n").split("\t", 1)
    try:
        rows.append((float(ts), json.loads(js)))
    except ValueError:
        pass
tfirst = rows[0][0]
busy = [j for _, j in rows if j["state"] == "relocating" and j["local_bytes"] > 0]
win = st.median(j["prefetch_window"] for j in busy) if busy else 0
rate = st.median(j["rate_bps"] for j in busy[1:]) / 1e6 if len(busy) > 1 else 0
last = rows[-1][1]
new = not os.path.exists(runs) or os.path.getsize(runs) == 0
with open(runs, "a") as f:
    if new:
        f.write("label\trep\tt_line_s\tt_first_s\tt_close_s\tratio_line\tratio_close\tratio_engine\t"
                "window_median\trate_median_MBps\ton_demand\tfetched_MiB\tskipped_MiB\n")
    f.write(f"{label}\t{rep}\t{tline-t0:.3f}\t{tfirst-t0:.3f}\t{tclose-t0:.3f}\t{(tline-t0)/limit:.3f}\t"
            f"{(tclose-t0)/limit:.3f}\t{(tline-tfirst)/limit:.3f}\t{win:g}\t{rate:.2f}\t{last['on_demand_fetches']}\t"
            f"{last['fetched_bytes']/2**20:.1f}\t{last['skipped_bytes']/2**20:.1f}\n")
new = not os.path.exists(tl) or os.path.getsize(tl) == 0
with open(tl, "a") as f:
    if new:
        f.write("label\trep\tt_s\tlocal_MiB\tfetched_MiB\trate_MBps\twindow\n")
    f.write(f"{label}\t{rep}\t0.000\t0\t0\t0\t0\n")
    for ts, j in rows:
        f.write(f"{label}\t{rep}\t{ts-t0:.3f}\t{j['local_bytes']/2**20:.1f}\t{j['fetched_bytes']/2**20:.1f}\t"
                f"{j['rate_bps']/1e6:.2f}\t{j['prefetch_window']}\n")
