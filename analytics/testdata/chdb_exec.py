"""Run SQL on chDB (current ClickHouse, in process) for analytics' tests.

The Go test (analytics/chdb_test.go) starts this script and speaks JSON
lines over stdin/stdout: one request {"sql": "..."} per line, one answer per
line, {"ok": true, "meta": [...], "data": [[...], ...]} or {"ok": false,
"error": "..."}. The first line written is {"ok": true, "version": "..."}
once the engine is up. Data lives in the session directory given as the
only argument, in UTC.

Needs the chdb package (make deps pins it). Exits 3 when it is missing.
"""
import json
import sys


def main() -> int:
    try:
        from chdb import session
    except ImportError as e:  # the Go test turns this into a clear failure
        print(json.dumps({"ok": False, "error": f"chdb not installed: {e}"}), flush=True)
        return 3
    sess = session.Session(sys.argv[1])
    sess.query("SET session_timezone = 'UTC'", "CSV")
    version = str(sess.query("SELECT version()", "TSV")).strip()
    print(json.dumps({"ok": True, "version": version}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            sql = json.loads(line)["sql"]
            out = sess.query(sql, "JSONCompact").bytes()
            if out.strip():
                res = json.loads(out)
                answer = {"ok": True, "meta": res.get("meta", []), "data": res.get("data", [])}
            else:
                answer = {"ok": True, "meta": [], "data": []}
        except Exception as e:  # reported to the test, which fails with it
            answer = {"ok": False, "error": str(e)}
        print(json.dumps(answer), flush=True)
    sess.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
