#!/usr/bin/env python3
"""List every user of a SCIM server page by page, by cursor (RFC 9865: follow nextCursor from an
empty cursor) or by index (startIndex += itemsPerPage until totalResults), over one keep-alive
connection. Prints to stderr one JSON line: method, count, pages, users, distinct users, seconds, and the
slowest page in milliseconds. Bounded: stops after --max-pages pages."""
import argparse, http.client, json, sys, time, urllib.parse

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--method", choices=["cursor", "index"], required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--max-pages", type=int, default=100000)
    ap.add_argument("--expect", type=int, help="users stored: also print a Markdown table row")
    a = ap.parse_args()
    u = urllib.parse.urlsplit(a.base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
    headers = {"Authorization": "Bearer " + a.token, "Accept": "application/scim+json"}
    ids, pages, slowest = [], 0, 0.0
    cursor, start = "", 1
    began = time.monotonic()
    while pages < a.max_pages:
        if a.method == "cursor":
            q = f"count={a.count}&cursor={cursor}"
        else:
            q = f"count={a.count}&startIndex={start}"
        t = time.monotonic()
        c.request("GET", f"{u.path}/Users?{q}", headers=headers)
        r = c.getresponse(); data = r.read()
        slowest = max(slowest, time.monotonic() - t)
        if r.status != 200:
            sys.exit(f"{r.status} {data[:300]!r}")
        body = json.loads(data)
        pages += 1
        ids.extend(res["id"] for res in body.get("Resources", []))
        if a.method == "cursor":
            cursor = body.get("nextCursor")
            if not cursor:
                break
        else:
            start += body["itemsPerPage"]
            if body["itemsPerPage"] == 0 or start > body["totalResults"]:
                break
    seconds = time.monotonic() - began
    print(json.dumps({"method": a.method, "count": a.count, "pages": pages, "users": len(ids),
                      "distinct": len(set(ids)), "seconds": round(seconds, 2),
                      "slowest_page_ms": round(slowest * 1000, 1)}), file=sys.stderr)
    if a.expect is not None:
        once = "yes" if len(ids) == len(set(ids)) == a.expect else "NO"
        print(f"| {a.method} | {a.count} | {pages} | {seconds:.1f} s | {len(ids) / seconds:,.0f} "
              f"| {slowest * 1000:.0f} ms | {once} |")

if __name__ == "__main__":
    main()
