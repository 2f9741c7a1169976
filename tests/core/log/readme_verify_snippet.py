import hashlib, json, sys
prev, count = "0" * 64, 0
for line in open(sys.argv[1], "rb"):  # v2 hashes the line's own bytes, v1 Python's canonical JSON
    rec = json.loads(line.decode("utf-8")); h = rec.pop("hash"); end = b',"hash":"' + h.encode() + b'"}\n'
    body = line[: -len(end)] + b"}" if rec["v"] == 2 and line.endswith(end) else b"not a v2 line"
    if rec["v"] == 1: body = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if rec["seq"] != count or rec["prev"] != prev or hashlib.sha256(body).hexdigest() != h:
        sys.exit(f"broken at seq {count}")
    prev, count = h, count + 1
print(f"valid: {count} records, head {prev}")
