#!/usr/bin/env python3
"""Decodes what `etcdctl get --prefix -w json` printed for Kubernetes' protobuf values.

The by-hand decoder of bench/restore-objects.sh: each value is the 4 bytes "k8s\\0",
then a runtime.Unknown (TypeMeta, raw message); the raw message is decoded with the
generated classes of the PyPI package k8s-proto (Kubernetes' v1 core types, protobuf
3) and printed as one JSON document per object, as the API's JSON would name the
fields (camelCase). Only ConfigMaps and Secrets: what the benchmark reads.

usage: k8s-decode.py ETCDCTL_JSON...   (prints a JSON list, and the count on stderr)
"""

import base64
import json
import sys

from google.protobuf.json_format import MessageToDict
from k8s.io.api.core.v1 import generated_pb2 as core
from k8s.io.apimachinery.pkg.runtime import generated_pb2 as runtime

KINDS = {"ConfigMap": core.ConfigMap, "Secret": core.Secret}
MAGIC = b"k8s\x00"


def main():
    objects = []
    for path in sys.argv[1:]:
        for kv in json.load(open(path)).get("kvs", []):
            value = base64.b64decode(kv["value"])
            key = base64.b64decode(kv["key"]).decode()
            if not value.startswith(MAGIC):
                sys.exit(f"{key}: not Kubernetes protobuf (encrypted at rest?)")
            unknown = runtime.Unknown.FromString(value[len(MAGIC):])
            cls = KINDS.get(unknown.typeMeta.kind)
            if cls is None:
                sys.exit(f"{key}: kind {unknown.typeMeta.kind} not decoded here")
            obj = MessageToDict(cls.FromString(unknown.raw))
            obj = {"apiVersion": unknown.typeMeta.apiVersion, "kind": unknown.typeMeta.kind, **obj}
            objects.append(obj)
    json.dump(objects, sys.stdout)
    print(f"{len(objects)} objects decoded", file=sys.stderr)


if __name__ == "__main__":
    main()
