"""Verify BeTrace violation signatures. Usage: verify_signature.py KEY_FILE VIOLATION.json..."""
import hashlib, hmac, json, sys

def verify(violation: dict, key: bytes) -> bool:
    body = {k: v for k, v in violation.items() if k != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    mac = hmac.new(key, canonical.encode("utf-8"), hashlib.sha256).hexdigest()
    return hmac.compare_digest(("v1:" + mac).encode(), str(violation.get("signature")).encode())

if __name__ == "__main__":
    key = open(sys.argv[1], "rb").read()
    results = [verify(json.load(open(p, encoding="utf-8")), key) for p in sys.argv[2:]]
    for path, ok in zip(sys.argv[2:], results):
        print(("ok  " if ok else "BAD ") + path)
    sys.exit(0 if results and all(results) else 1)
