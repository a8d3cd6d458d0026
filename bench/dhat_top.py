#!/usr/bin/env python3
"""The allocation sites of a DHAT heap profile (the `dhat` crate's JSON, as written by
`KINDE_DHAT_JSON=FILE cargo bench -p kinde-core --bench allocations`), by blocks allocated:
`python3 bench/dhat_top.py FILE [N] [FRAME]` prints the N (30) sites with a frame containing
FRAME (default `src/webhooks/mod.rs:`, i.e. under `Webhooks::handle`), each by its first
frames past the allocator's and the standard library's, innermost first."""
import json
import sys

SKIP = ("dhat", "alloc/src", "src/raw_vec", "src/vec/", "alloc::", "core::", "[root]",
        "string.rs", "slice.rs", "boxed.rs", "str.rs", "sync.rs", "benches/allocations.rs:15")


def short(frame):
    frame = frame.split(": ", 1)[-1]
    name, _, place = frame.rpartition(" (")
    name = name.split("<", 1)[0] if not name.startswith("<") else name[:60]
    return f"{name} ({place}"


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    want = sys.argv[3] if len(sys.argv) > 3 else "src/webhooks/mod.rs:"
    doc = json.load(open(path))
    frames = doc["ftbl"]
    pps = [p for p in doc["pps"] if any(want in frames[i] for i in p["fs"])]
    pps.sort(key=lambda p: -p["tbk"])
    total = sum(p["tbk"] for p in pps)
    print(f"{total} blocks in {len(pps)} sites with a frame in {want!r}")
    for p in pps[:top]:
        names = [frames[i] for i in p["fs"]]
        names = [short(n) for n in names if not any(k in n for k in SKIP)]
        print(f"{p['tbk']:>7} {p['tb']:>9} B  " + " < ".join(names[:4]))


main()
