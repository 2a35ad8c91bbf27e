"""Tiny management client for the benchmarks (the protocol of src/Reloc.Management: JSON lines over TCP).
Usage: mgmt.py HOST:PORT COMMAND [JSON_ARGS]          -> prints the result JSON, exit 1 with the reason on error
       mgmt.py HOST:PORT wait-relocated DISK SITE T  -> polls until DISK is owned by SITE with no relocation left;
                                                        prints the wall clock (epoch seconds) when first seen"""
import json, socket, sys, time

def call(addr, command, args=None):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall((json.dumps({"command": command, "args": args or {}}) + "\n").encode())
        reply = json.loads(s.makefile().readline())
    if not reply.get("ok"):
        raise RuntimeError(reply.get("error", "refused"))
    return reply.get("result")

if __name__ == "__main__":
    addr, command = sys.argv[1], sys.argv[2]
    if command == "wait-relocated":
        disk, site, deadline = sys.argv[3], sys.argv[4], time.time() + float(sys.argv[5])
        while time.time() < deadline:
            try:
                show = call(addr, "disk.show", {"name": disk})
                if show["owner"] == site and show["phase"] == "owned" and len(show["copies"]) == 1 \
                        and not any(r["disk"] == disk for r in call(addr, "relocation.list")):
                    print(f"{time.time():.3f}")
                    sys.exit(0)
            except (RuntimeError, OSError):
                pass
            time.sleep(0.05)
        sys.exit("timed out")
    try:
        print(json.dumps(call(addr, command, json.loads(sys.argv[3]) if len(sys.argv) > 3 else None)))
    except RuntimeError as e:
        sys.exit(str(e))
