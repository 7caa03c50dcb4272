#!/usr/bin/env python3
"""Fills the lab with the input of bench/backup.sh and bench/restore-objects.sh.

Run by bench/lib.sh's bench_lab_fill against a lab that is up:

  * NAMESPACES namespaces bench-obj-00, bench-obj-01, ... with OBJECTS ConfigMaps in
    all (small: one key of ~150 bytes), created over the API as the admin;
  * the namespace bench-restore with RESTORE ConfigMaps and RESTORE Secrets (labelled
    bench=restore);
  * about FILLER_MIB MiB of random 100 KiB values under /bench-filler/ in the lab's
    etcd (outside /registry: the API server never sees them, the snapshot carries them).

Whatever is already there is not created again (counted in etcd first), so a second run
on the same lab only checks. Requests go out on a few connections at once (bounded
thread pools); every request has a timeout.

usage: lab-fill.py ETC_KUBERNETES ETCD_URL OBJECTS NAMESPACES RESTORE FILLER_MIB
"""

import base64
import http.client
import json
import os
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import yaml

VALUE = 100 * 1024
WORKERS = 6


def b64(b):
    return base64.b64encode(b).decode()


def prefix_end(p):
    return p[:-1] + bytes([p[-1] + 1])


class Pool:
    """One HTTPS connection per thread to one server, client certificate auth."""

    def __init__(self, url, ca, cert, key):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(cert, key)
        self.local = threading.local()

    def request(self, method, path, body=None):
        for attempt in range(5):  # bounded retries: a connection the server closed
            c = getattr(self.local, "conn", None)
            if c is None:
                c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60)
                self.local.conn = c
            try:
                data = None if body is None else json.dumps(body)
                c.request(method, path, data, {"Content-Type": "application/json"})
                r = c.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                c.close()
                self.local.conn = None
                if attempt == 4:
                    raise
                time.sleep(0.5)


def etcd_count(etcd, prefix):
    status, body = etcd.request("POST", "/v3/kv/range", {
        "key": b64(prefix), "range_end": b64(prefix_end(prefix)), "count_only": True})
    if status != 200:
        sys.exit(f"etcd range {prefix!r}: HTTP {status} {body[:200]!r}")
    return int(json.loads(body).get("count", 0))


def etcd_keys(etcd, prefix):
    status, body = etcd.request("POST", "/v3/kv/range", {
        "key": b64(prefix), "range_end": b64(prefix_end(prefix)), "keys_only": True})
    if status != 200:
        sys.exit(f"etcd range {prefix!r}: HTTP {status}")
    return {base64.b64decode(kv["key"]) for kv in json.loads(body).get("kvs", [])}


def create(api, path, obj):
    status, body = api.request("POST", path, obj)
    if status not in (201, 409):  # 409: already there
        raise RuntimeError(f"POST {path} {obj['metadata']['name']}: HTTP {status} {body[:200]!r}")


def run_all(fn, items):
    with ThreadPoolExecutor(WORKERS) as ex:
        for _ in ex.map(fn, items):
            pass


def main():
    etc, etcd_url = sys.argv[1], sys.argv[2]
    objects, namespaces, restore, filler_mib = map(int, sys.argv[3:7])
    conf = yaml.safe_load(open(os.path.join(etc, "admin.conf")))
    cluster, user = conf["clusters"][0]["cluster"], conf["users"][0]["user"]
    with tempfile.TemporaryDirectory(prefix="kastellan-bench-fill-") as tmp:
        files = {}
        for name, data in [("ca.crt", cluster["certificate-authority-data"]),
                           ("client.crt", user["client-certificate-data"]),
                           ("client.key", user["client-key-data"])]:
            files[name] = os.path.join(tmp, name)
            fd = os.open(files[name], os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, base64.b64decode(data))
            os.close(fd)
        api = Pool(cluster["server"], files["ca.crt"], files["client.crt"], files["client.key"])
        pki = os.path.join(etc, "pki")
        etcd = Pool(etcd_url, os.path.join(pki, "etcd/ca.crt"),
                    os.path.join(pki, "apiserver-etcd-client.crt"),
                    os.path.join(pki, "apiserver-etcd-client.key"))

        started = time.time()
        per_ns = objects // namespaces
        for n in [f"bench-obj-{i:02d}" for i in range(namespaces)] + ["bench-restore"]:
            create(api, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}})
        todo = []
        for i in range(namespaces):
            ns = f"bench-obj-{i:02d}"
            if etcd_count(etcd, f"/registry/configmaps/{ns}/cm-".encode()) < per_ns:
                todo += [(ns, j) for j in range(per_ns)]

        def cm(item):
            ns, j = item
            create(api, f"/api/v1/namespaces/{ns}/configmaps", {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": f"cm-{j:05d}", "labels": {"bench": "objects"}},
                "data": {"config.txt": f"object {j} of {ns}: " + "x" * 120}})
        run_all(cm, todo)
        print(f"ConfigMaps: {objects} in {namespaces} namespaces ({len(todo)} created, "
              f"{time.time() - started:.0f} s)", file=sys.stderr)

        def restore_obj(item):
            kind, j = item
            meta = {"name": f"{kind.lower()}-{j:03d}", "labels": {"bench": "restore", "index": str(j)}}
            if kind == "ConfigMap":
                create(api, "/api/v1/namespaces/bench-restore/configmaps", {
                    "apiVersion": "v1", "kind": kind, "metadata": meta,
                    "data": {"app.properties": f"index={j}\nmode=calm\n" + "y" * 200}})
            else:
                create(api, "/api/v1/namespaces/bench-restore/secrets", {
                    "apiVersion": "v1", "kind": kind, "metadata": meta, "type": "Opaque",
                    "data": {"password": b64(f"secret-{j}-".encode() * 8)}})
        run_all(restore_obj, [(k, j) for k in ("ConfigMap", "Secret") for j in range(restore)])
        print(f"bench-restore: {restore} ConfigMaps and {restore} Secrets", file=sys.stderr)

        started = time.time()
        count = filler_mib * 1024 * 1024 // VALUE
        have = etcd_keys(etcd, b"/bench-filler/")
        missing = [i for i in range(count) if f"/bench-filler/{i:06d}".encode() not in have]

        def put(i):
            status, body = etcd.request("POST", "/v3/kv/put", {
                "key": b64(f"/bench-filler/{i:06d}".encode()), "value": b64(os.urandom(VALUE))})
            if status != 200:
                raise RuntimeError(f"etcd put {i}: HTTP {status} {body[:200]!r}")
        run_all(put, missing)
        print(f"filler: {count} values of {VALUE} bytes under /bench-filler/ ({len(missing)} written, "
              f"{time.time() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
