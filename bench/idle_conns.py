#!/usr/bin/env python3
"""Hold N idle HTTP/1.1 keep-alive connections open to one server (bench/load.sh, IDLE=1).

Each connection sends one `GET PATH` and reads the whole 200 response, so the
server holds it as a real keep-alive connection (parsed request, response
written, waiting for the next one), not as a fresh accept. Then:

  1. prints `open N` on stdout (N = connections that completed their request);
  2. waits until the file --release exists (load.sh reads the server's RSS
     meanwhile), or --hold seconds pass;
  3. prints `still_open M`: how many the server has not closed in the meantime;
  4. closes them all and exits (status 1 when a request failed or a
     connection was closed by the server).

Standard library only (asyncio). The caller must allow enough open files
(ulimit -n) for N sockets.
"""

import argparse
import asyncio
import os
import sys
import time


async def one(host: str, port: int, path: str, sem: asyncio.Semaphore, timeout: float):
    """Open a connection, do one request; return (reader, writer) or raise."""
    async with sem:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        if " 200 " not in lines[0] + " ":
            raise RuntimeError(f"status line {lines[0]!r}")
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            if name.strip().lower() == "connection" and "close" in value.lower():
                raise RuntimeError("server answered Connection: close")
        if length is None:
            raise RuntimeError("response without Content-Length")
        await asyncio.wait_for(reader.readexactly(length), timeout)
        return reader, writer


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--path", default="/hello")
    ap.add_argument("-n", type=int, default=10000, help="connections")
    ap.add_argument("--concurrency", type=int, default=64, help="connections being opened at once")
    ap.add_argument("--release", required=True, help="close everything once this file exists")
    ap.add_argument("--hold", type=float, default=120.0, help="longest wait for --release, seconds")
    ap.add_argument("--timeout", type=float, default=30.0, help="per connect / response, seconds")
    args = ap.parse_args()

    sem = asyncio.Semaphore(args.concurrency)
    t0 = time.monotonic()
    results = await asyncio.gather(
        *(one(args.host, args.port, args.path, sem, args.timeout) for _ in range(args.n)),
        return_exceptions=True,
    )
    conns = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        kinds: dict = {}
        for e in errors:
            kinds[f"{type(e).__name__}: {e}"] = kinds.get(f"{type(e).__name__}: {e}", 0) + 1
        for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])[:5]:
            print(f"idle_conns: {v} connection(s) failed: {k}", file=sys.stderr)
    print(f"open {len(conns)} errors {len(errors)} seconds {time.monotonic() - t0:.2f}", flush=True)

    deadline = time.monotonic() + args.hold
    while not os.path.exists(args.release) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0)  # let pending EOFs reach the readers
    # Closed by the server: EOF (FIN) seen, or the transport gone (RST).
    still = sum(
        1 for reader, writer in conns
        if not reader.at_eof() and reader.exception() is None and not writer.transport.is_closing()
    )
    print(f"still_open {still}", flush=True)
    for _, writer in conns:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)
    return 0 if not errors and still == len(conns) == args.n else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
