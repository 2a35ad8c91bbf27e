#!/usr/bin/env python3
"""Records NBD sessions as fuzz seeds: a TCP proxy on 127.0.0.1:LISTEN to 127.0.0.1:UPSTREAM that writes,
for every connection, what the client sent (OUT/N.c2s) and what the server sent (OUT/N.s2c).
Usage: fuzz-record.py LISTEN UPSTREAM OUT   (runs until killed)"""
import os, socket, sys, threading

listen, upstream, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
os.makedirs(out, exist_ok=True)

def pump(src, dst, path):
    with open(path, "wb") as f:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            f.write(data)
            try:
                dst.sendall(data)
            except OSError:
                break
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass

server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen))
server.listen(8)
n = 0
while True:
    client, _ = server.accept()
    n += 1
    up = socket.create_connection(("127.0.0.1", upstream))
    base = os.path.join(out, str(n))
    threading.Thread(target=pump, args=(client, up, base + ".c2s"), daemon=True).start()
    threading.Thread(target=pump, args=(up, client, base + ".s2c"), daemon=True).start()
