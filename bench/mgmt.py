"""Tiny management client for the benchmarks, over the node's HTTP API (src/Reloc.Management/ManagementApi.cs).
Usage: mgmt.py HOST:PORT COMMAND [JSON_BODY]          -> prints the result JSON, exit 1 with the problem's detail on error
       mgmt.py HOST:PORT wait-relocated DISK SITE T  -> polls until DISK is owned by SITE with no relocation left;
                                                        prints the wall clock (epoch seconds) when first seen
       mgmt.py HOST:PORT relocate-timed DISK SITE T [HOST:PORT_OF_SITE] -> sends relocate (postcopy) and waits as
                                                        above (at the second address if given); prints "SENT DONE"
                                                        epoch seconds, both taken in this one process
Commands: cluster.show, disk.create BODY, disk.show NAME, relocate BODY, relocation.list, relocation.show NAME,
relocation.rate NAME+BODY, relocation.weight NAME+BODY, link.list, link.set A+B+BODY (the routes below)."""
import json, sys, time, urllib.error, urllib.request

ROUTES = {  # command -> (method, path); {name} is taken from the body
    "cluster.show": ("GET", "/api/v1/cluster"),
    "disk.create": ("POST", "/api/v1/disks"),
    "disk.show": ("GET", "/api/v1/disks/{name}"),
    "relocate": ("POST", "/api/v1/relocations"),
    "relocation.list": ("GET", "/api/v1/relocations"),
    "relocation.show": ("GET", "/api/v1/relocations/{name}"),
    "relocation.rate": ("POST", "/api/v1/relocations/{name}/rate"),
    "relocation.weight": ("POST", "/api/v1/relocations/{name}/weight"),
    "link.list": ("GET", "/api/v1/links"),
    "link.set": ("PUT", "/api/v1/links/{a}/{b}"),
}

def call(addr, command, body=None):
    method, path = ROUTES[command]
    for key in ("name", "a", "b"):
        if "{" + key + "}" in path:
            path = path.replace("{" + key + "}", urllib.request.quote(body.pop(key)))
    data = json.dumps(body).encode() if method in ("POST", "PUT") else None
    request = urllib.request.Request(f"http://{addr}{path}", data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as e:
        problem = json.loads(e.read() or b"{}")
        raise RuntimeError(problem.get("detail") or problem.get("title") or f"HTTP {e.code}")

if __name__ == "__main__":
    addr, command = sys.argv[1], sys.argv[2]
    if command in ("wait-relocated", "relocate-timed"):
        disk, site, deadline = sys.argv[3], sys.argv[4], time.time() + float(sys.argv[5])
        sent = None
        if command == "relocate-timed":
            sent = time.time()
            call(addr, "relocate", {"disk": disk, "to": site, "mode": "postcopy"})
            addr = sys.argv[6] if len(sys.argv) > 6 else addr
        while time.time() < deadline:
            try:
                show = call(addr, "disk.show", {"name": disk})
                if show["owner"] == site and show["phase"] == "owned" and len(show["copies"]) == 1 \
                        and not any(r["disk"] == disk for r in call(addr, "relocation.list")):
                    print(f"{time.time():.3f}" if sent is None else f"{sent:.3f} {time.time():.3f}")
                    sys.exit(0)
            except (RuntimeError, OSError):
                pass
            time.sleep(0.05)
        sys.exit("timed out")
    try:
        print(json.dumps(call(addr, command, json.loads(sys.argv[3]) if len(sys.argv) > 3 else None)))
    except RuntimeError as e:
        sys.exit(str(e))
