#!/usr/bin/env python3
"""Seed a SCIM server with N users named bench-1@example.com .. bench-N@example.com (and optionally
a group holding M of them), over HTTP with a few parallel connections. Prints the group id and
writes the ids of the seeded users to a file, for the load scripts."""
import argparse, http.client, json, sys, threading, time, urllib.parse

def conn(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60), u.path.rstrip("/")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2")
    ap.add_argument("--token", required=True)
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--ids-file", required=True)
    ap.add_argument("--group-members", type=int, default=0)
    ap.add_argument("--max-seconds", type=int, default=900)
    a = ap.parse_args()
    headers = {"Authorization": "Bearer " + a.token, "Content-Type": "application/scim+json"}
    ids = [None] * (a.users + 1)
    deadline = time.time() + a.max_seconds
    errors = []

    def worker(k):
        c, path = conn(a.base)
        for i in range(k + 1, a.users + 1, a.threads):
            if time.time() > deadline:
                errors.append("deadline"); return
            name = f"bench-{i}@example.com"
            body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
                    "name": {"givenName": "Bench", "familyName": str(i)}, "displayName": f"Bench {i}",
                    "emails": [{"primary": True, "type": "work", "value": name}], "active": True}
            c.request("POST", path + "/Users", json.dumps(body), headers)
            r = c.getresponse(); data = r.read()
            if r.status != 201:
                errors.append(f"{r.status} {data[:200]!r}"); return
            ids[i] = json.loads(data)["id"]

    t0 = time.time()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(a.threads)]
    [t.start() for t in ts]; [t.join() for t in ts]
    took = time.time() - t0
    if errors:
        sys.exit(f"seeding failed: {errors[0]}")
    print(f"seeded {a.users} users in {took:.1f}s ({a.users / took:.0f}/s)", file=sys.stderr)
    with open(a.ids_file, "w") as f:
        f.write("\n".join(x for x in ids[1:] if x) + "\n")

    if a.group_members:
        c, path = conn(a.base)
        c.request("POST", path + "/Groups", json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                                       "displayName": "bench-large-group", "members": []}), headers)
        r = c.getresponse(); g = json.loads(r.read())
        if r.status != 201:
            sys.exit(f"group create failed: {r.status} {g}")
        members = [x for x in ids[1:a.group_members + 1] if x]
        for s in range(0, len(members), 1000):
            ops = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "add", "path": "members", "value": [{"value": m} for m in members[s:s + 1000]]}]}
            c.request("PATCH", path + "/Groups/" + g["id"], json.dumps(ops), headers)
            r = c.getresponse(); body = r.read()
            if r.status not in (200, 204):
                sys.exit(f"group patch failed: {r.status} {body[:200]!r}")
        print(f"group {g['id']} holds {len(members)} members", file=sys.stderr)
        print(g["id"])

if __name__ == "__main__":
    main()
