#!/usr/bin/env python3
"""Push USERS users and GROUPS groups (MEMBERS members each) to a running bridge at concurrency C
over SCIM, then poll the Coder fake until it holds exactly that state. Prints JSON with the
push time, the convergence time after the last SCIM response, and the counts."""
import argparse, http.client, itertools, json, sys, threading, time, urllib.parse, random

def conn(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=120), u.path.rstrip("/")

def run_parallel(n_threads, items, fn):
    errors, lock, it = [], threading.Lock(), iter(items)
    def work():
        c = None
        while True:
            with lock:
                try: item = next(it)
                except StopIteration: return
            try:
                c = fn(c, item)
            except Exception as e:  # reported below; the bench fails
                errors.append(repr(e)); return
    ts = [threading.Thread(target=work) for _ in range(n_threads)]
    [t.start() for t in ts]; [t.join() for t in ts]
    if errors: sys.exit("push failed: " + errors[0])

def main():
    ap = argparse.ArgumentParser()
    # Several comma-separated bases (replicas): the client connections are spread over them.
    ap.add_argument("--base", required=True); ap.add_argument("--token", required=True)
    ap.add_argument("--fake", required=True); ap.add_argument("--fake-token", required=True)
    ap.add_argument("--users", type=int, default=10000); ap.add_argument("--groups", type=int, default=500)
    ap.add_argument("--members", type=int, default=50); ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-seconds", type=int, default=600)
    a = ap.parse_args()
    h = {"Authorization": "Bearer " + a.token, "Content-Type": "application/scim+json"}
    ids = {}
    bases, base_lock = itertools.cycle(a.base.split(",")), threading.Lock()
    def next_base():
        with base_lock: return next(bases)
    def post_user(c, i):
        c = c or conn(next_base())
        cc, path = c
        name = f"sync{i}@example.com"
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
                "name": {"givenName": "Sync", "familyName": str(i)}, "displayName": f"Sync User {i}",
                "emails": [{"primary": True, "type": "work", "value": name}], "active": True}
        cc.request("POST", path + "/Users", json.dumps(body), h); r = cc.getresponse(); d = r.read()
        if r.status != 201: raise RuntimeError(f"POST /Users {r.status} {d[:200]!r}")
        ids[i] = json.loads(d)["id"]
        return c
    rnd = random.Random(7)
    def post_group(c, g):
        c = c or conn(next_base())
        cc, path = c
        members = [{"value": ids[m]} for m in rnd.sample(range(a.users), a.members)]
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": f"sync-group-{g}", "members": []}
        cc.request("POST", path + "/Groups", json.dumps(body), h); r = cc.getresponse(); d = r.read()
        if r.status != 201: raise RuntimeError(f"POST /Groups {r.status} {d[:200]!r}")
        gid = json.loads(d)["id"]
        patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                 "Operations": [{"op": "add", "path": "members", "value": members}]}
        cc.request("PATCH", path + "/Groups/" + gid, json.dumps(patch), h); r = cc.getresponse(); d = r.read()
        if r.status not in (200, 204): raise RuntimeError(f"PATCH /Groups {r.status} {d[:200]!r}")
        return c
    t0 = time.time()
    run_parallel(a.concurrency, range(a.users), post_user)
    run_parallel(a.concurrency, range(a.groups), post_group)
    last = time.time()
    fc, fpath = conn(a.fake)
    deadline = last + a.max_seconds
    state = {}
    while True:
        fc.request("GET", "/__fake/state", headers={"Coder-Session-Token": a.fake_token}); r = fc.getresponse(); state = json.loads(r.read())
        users = [u for u in state["users"] if not u["deleted"] and u["email"].startswith("sync")]
        groups = [g for g in state["groups"] if g["name"].startswith("sync-group-")]
        full = [g for g in groups if len(g["members"]) == a.members]
        if len(users) == a.users and len(groups) == a.groups and len(full) == a.groups:
            break
        if time.time() > deadline:
            break
        time.sleep(0.5)
    done = time.time()
    # The fake's call log, less the owner's own calls: every call the bridge made to Coder.
    calls = state.get("calls", [])
    user_calls = [c for c in calls if c["route"] == "/api/v2/users"]
    lookups = sum(1 for c in user_calls if c["method"] == "GET")
    creates = sum(1 for c in user_calls if c["method"] == "POST")
    writes = a.users + 2 * a.groups
    print(json.dumps({"push_seconds": round(last - t0, 1), "scim_writes": writes,
                      "scim_writes_per_second": round(writes / max(last - t0, 1e-9), 1),
                      "converged_seconds_after_last_response": round(done - last, 1),
                      "converged_seconds_from_first_request": round(done - t0, 1),
                      "coder_calls": len(calls), "user_lookups_and_listings": lookups, "user_creates": creates,
                      "user_calls_per_new_user": round((lookups + creates) / max(a.users, 1), 3),
                      "coder_calls_per_new_user_all_routes": round(len(calls) / max(a.users, 1), 3),
                      "coder_users": len(users), "coder_groups": len(groups), "groups_complete": len(full),
                      "converged": len(users) == a.users and len(full) == a.groups}))

if __name__ == "__main__":
    main()
