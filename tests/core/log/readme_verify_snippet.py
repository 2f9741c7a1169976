import hashlib, json, sys
prev, count = "0" * 64, 0
for line in open(sys.argv[1], encoding="utf-8", newline="\n"):
    rec = json.loads(line)
    h = rec.pop("hash")
    canon = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if rec["seq"] != count or rec["prev"] != prev or hashlib.sha256(canon.encode()).hexdigest() != h:
        sys.exit(f"broken at seq {count}")
    prev, count = h, count + 1
print(f"valid: {count} records, head {prev}")
