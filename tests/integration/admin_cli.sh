#!/usr/bin/env bash
# End-to-end test of the fleet admin CLI against a running vtpmcad (--server, the admin API)
# and offline (--db and the state files) where that works: instance enroll, show, list,
# disable, enable, re-enroll, delete, wrap-key, bulk and history; audit tail (--follow) and
# search; kbs-key show, list, trust and untrust; ledger show, clear and require-admin-clear.
# Both modes must print the same JSON. Refusals exit 1 or 2 with one line and change nothing.
# Usage: bash tests/integration/admin_cli.sh BUILD_DIR
set -euo pipefail

BUILD=$(cd "${1:?usage: admin_cli.sh BUILD_DIR}" && pwd)
CLI=$BUILD/vtpmca
DAEMON=$BUILD/vtpmcad

TMP=$(mktemp -d)
DAEMON_PID=
cleanup() {
    if [ -n "$DAEMON_PID" ]; then kill "$DAEMON_PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
OUT=$TMP/stdout
ERR=$TMP/stderr
STATE=$TMP/state
DB=$STATE/vtpmca.db
TRUSTED=$TMP/trusted-kbs

# shellcheck source=lib/common.bash
source "$(dirname "$0")/lib/common.bash"
# The daemon's output can be long: only its first 40 lines on failure.
fail() {
    echo "FAIL: $*" >&2
    sed 's/^/  stdout: /' "$OUT" | head -40 >&2
    sed 's/^/  stderr: /' "$ERR" | head -40 >&2
    exit 1
}
same_json() { # FILE1 FILE2
    python3 -c "import json,sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))" \
        "$1" "$2" || fail "$1 and $2 differ"
}
offline_count() {
    run 0 "$CLI" instance list --db "$DB" --json
    json "len(d)"
}

echo "-- help of every command"
for group in instance audit kbs-key ledger; do
    run 0 "$CLI" "$group" --help
    out_has "^Usage: vtpmca $group <command>"
done
for cmd in "instance enroll" "instance bulk" "instance re-enroll" "instance delete" \
    "instance wrap-key" "instance history" "audit tail" "audit search" "kbs-key show" \
    "kbs-key list" "kbs-key trust" "kbs-key untrust" "ledger show" "ledger clear" \
    "ledger require-admin-clear"; do
    # shellcheck disable=SC2086
    run 0 "$CLI" $cmd --help
    out_has "^Usage: vtpmca $cmd"
done

echo "-- a daemon with an admin (alice) and an auditor (audrey)"
mkdir -m 700 "$TMP/admins" "$TMP/admins/auditors" "$STATE"
run 0 "$CLI" admin keygen --out "$TMP/alice.pem"
run 0 "$CLI" admin keygen --out "$TMP/audrey.pem" --key-type p256
mv "$TMP/alice.pub.pem" "$TMP/admins/"
mv "$TMP/audrey.pub.pem" "$TMP/admins/auditors/"
"$DAEMON" --state-dir "$STATE" --port 0 --port-file "$TMP/port" --admin-keys-dir "$TMP/admins" \
    --trusted-kbs-keys-dir "$TRUSTED" --max-body-bytes 1048576 --log-level warn \
    2>"$TMP/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 150); do [ -s "$TMP/port" ] && break; sleep 0.1; done
[ -s "$TMP/port" ] || { cat "$TMP/daemon.log" >&2; fail "vtpmcad did not start"; }
export VTPMCA_SERVER="http://127.0.0.1:$(cat "$TMP/port")"
export VTPMCA_ADMIN_KEY=$TMP/alice.pem
AUDITOR=(--admin-key "$TMP/audrey.pem")

run 0 "$CLI" fleet create prod
run 0 "$CLI" fleet create lab

echo "-- instance enroll, show, list: the same output remotely and offline"
run 0 "$CLI" instance enroll vm-1 --fleet prod
out_has "^enrolled instance vm-1 in fleet prod \(key mode generated\)$"
out_has "^resource path: vtpmca/persistence-key/[0-9a-f]{32}$"
run 0 "$CLI" instance enroll vm-2 --fleet prod --mode wrapped --resource-path default/sample/vm2 --json
json_is "d['resource_path']" default/sample/vm2
run 0 "$CLI" instance show vm-2 --json
cp "$OUT" "$TMP/show-remote.json"
run 0 "$CLI" instance show vm-2 --db "$DB" --json
cp "$OUT" "$TMP/show-offline.json"
same_json "$TMP/show-remote.json" "$TMP/show-offline.json"
run 0 "$CLI" instance show vm-2
out_has "^key mode: +wrapped$"
run 0 "$CLI" instance list --json
cp "$OUT" "$TMP/list-remote.json"
json_is "[i['instance'] for i in d]" "['vm-1', 'vm-2']"
run 0 "$CLI" instance list --db "$DB" --json
cp "$OUT" "$TMP/list-offline.json"
same_json "$TMP/list-remote.json" "$TMP/list-offline.json"
run 0 "$CLI" instance list --fleet lab --json
json_is "d" "[]"
run 1 "$CLI" instance list --fleet nowhere
err_has "nowhere" && err_one_line

echo "-- refusals change nothing"
run 1 "$CLI" instance enroll vm-1 --fleet prod
err_has "already enrolled" && err_one_line
run 1 "$CLI" instance enroll vm-3 --fleet nowhere
run 2 "$CLI" instance enroll "vm 3" --fleet prod
err_has "instance id" && err_one_line
run 1 "$CLI" instance enroll vm-3 --fleet prod "${AUDITOR[@]}"
err_has "forbidden" && err_one_line
run 1 "$CLI" instance show vm-404
err_has "vm-404"
run 2 "$CLI" instance show vm-1 --db "$DB" --server "$VTPMCA_SERVER"
err_has "exclude each other"
[ "$(offline_count)" = 2 ] || fail "refused enrollments changed the instance count"

echo "-- disable, enable, re-enroll, history"
run 0 "$CLI" instance disable vm-1
out_has "^disabled instance vm-1$"
run 0 "$CLI" instance show vm-1 --db "$DB" --json
json_is "d['disabled']" True
run 0 "$CLI" instance enable vm-1 --json
json_is "d['disabled']" False
run 0 "$CLI" instance re-enroll vm-1
out_has "may present another EK"
run 1 "$CLI" instance re-enroll ghost
run 0 "$CLI" instance history vm-1 --json
json_is "[e['action'] for e in d if e['outcome'] in ('ok', 'enrolled')]" \
    "['enroll', 'admin.instance_enroll', 'admin.instance_disable', 'admin.instance_enable', 'admin.instance_reenroll']"
json_is "[e['outcome'] for e in d if e['action'] == 'admin.instance_enroll']" "['ok', 'refused']"
run 0 "$CLI" instance history vm-1 "${AUDITOR[@]}"
out_has "admin.instance_reenroll +ok +alice"

echo "-- wrap-key through the daemon"
head -c 32 /dev/urandom >"$TMP/my.key"
run 0 "$CLI" instance wrap-key vm-2 --key "$TMP/my.key"
[ "$(wc -c <"$OUT")" -gt 40 ] || fail "no wrapped key"
run 1 "$CLI" instance wrap-key vm-1 --key "$TMP/my.key"
err_has "not in wrapped-key mode" && err_one_line

echo "-- delete: gone for good"
run 0 "$CLI" instance enroll vm-del --fleet lab
run 0 "$CLI" instance delete vm-del --json
json_is "d['deleted']" True
json_is "d['certificates_revoked']" 0
run 1 "$CLI" instance show vm-del
run 1 "$CLI" instance enroll vm-del --fleet lab
err_has "deleted instance" && err_one_line
run 1 "$CLI" instance delete vm-del

echo "-- bulk through the daemon: bad rows with their lines, nothing half-applied"
BEFORE=$(offline_count)
cat >"$TMP/bad.csv" <<'EOF'
instance,fleet,host_data
bulk-1,prod,
bulk 2,prod,
bulk-3,prod,xyz
bulk-1,prod,
EOF
run 2 "$CLI" instance bulk --file "$TMP/bad.csv"
err_has "line 3: instance 'bulk 2'"
err_has "line 4: instance bulk-3: host_data"
err_has "line 5: instance bulk-1 appears on line 2 already"
err_has "3 bad rows"
[ "$(offline_count)" = "$BEFORE" ] || fail "a refused bulk enrolled something"
printf 'instance,fleet\nbulk-a,prod\nvm-1,prod\n' >"$TMP/taken.csv"
run 1 "$CLI" instance bulk --file "$TMP/taken.csv"
err_has "line 3: instance vm-1 is already enrolled"
[ "$(offline_count)" = "$BEFORE" ] || fail "a refused bulk enrolled something"
run 0 "$CLI" instance bulk --file "$TMP/bad.csv" --skip-bad --out "$TMP/skip.jsonl"
out_has "^enrolled 1 instance in 1 batch \(3 bad rows skipped\)"
[ "$(wc -l <"$TMP/skip.jsonl")" = 1 ] || fail "--skip-bad wrote other than one instance"
run 2 "$CLI" instance bulk --file "$TMP/bad.txt"
err_has "give --format"

echo "-- bulk of 3000 instances in batches of 1000, JSON Lines in and out"
python3 - "$TMP/many.jsonl" <<'EOF'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(3000):
        row = {"instance": "many-%04d" % i}
        if i % 3 == 0:
            row.update(mode="wrapped", key="AAECAwQFBgcICQoLDA0ODw==")
        f.write(json.dumps(row) + "\n")
EOF
run 0 "$CLI" instance bulk --file "$TMP/many.jsonl" --fleet lab --batch 1000 --out "$TMP/tags.jsonl"
out_has "^enrolled 3000 instances in 3 batches \(0 bad rows found\)"
[ ! -s "$ERR" ] || fail "a progress bar or other noise on a non-terminal stderr"
run 0 "$CLI" instance list --db "$DB" --fleet lab --json
python3 - "$TMP/tags.jsonl" "$OUT" <<'EOF' || fail "the tags output differs from the store"
import json, sys
tags = [json.loads(line) for line in open(sys.argv[1])]
stored = {i["instance"]: i for i in json.load(open(sys.argv[2]))}
assert len(tags) == 3000
for n, t in enumerate(tags):
    assert t["line"] == n + 1 and t["fleet"] == "lab"
    s = stored[t["instance"]]
    assert s["resource_path"] == t["resource_path"], t
    assert ("wrapped_key" in t) == (s["key_mode"] == "wrapped"), t
EOF
# Without --out the instances go to stdout and the summary to stderr.
printf 'instance\nstdout-1\n' >"$TMP/one.csv"
run 0 "$CLI" instance bulk --file "$TMP/one.csv" --fleet lab
out_has '^\{"line":2,"instance":"stdout-1","fleet":"lab","resource_path":"vtpmca/persistence-key/'
err_has "^enrolled 1 instance"
# A batch larger than the daemon's max_body_bytes is refused with a hint.
python3 -c "
for i in range(30000): print('huge-%05d,lab' % i)" | sed '1i instance,fleet' >"$TMP/huge.csv"
COUNT=$(offline_count)
run 2 "$CLI" instance bulk --file "$TMP/huge.csv"
err_has "smaller --batch"
[ "$(offline_count)" = "$COUNT" ] || fail "a refused batch enrolled something"

echo "-- bulk offline on a database of its own"
OFF=$TMP/offline/vtpmca.db
mkdir -m 700 "$TMP/offline"
run 0 "$CLI" fleet create prod --db "$OFF"
run 0 "$CLI" instance bulk --file "$TMP/bad.csv" --db "$OFF" --skip-bad --json --out "$TMP/off.jsonl"
json_is "d['enrolled']" 1
json_is "d['skipped']" 3
json_is "[e['line'] for e in d['errors']]" "[3, 4, 5]"
err_has "created a new master key"
[ -s "$TMP/offline/master.key" ] || fail "no master key beside the offline database"

echo "-- audit search and tail, remote and offline alike"
run 0 "$CLI" audit search --action enroll --instance vm-2 --json
cp "$OUT" "$TMP/audit-remote.json"
json_is "len(d)" 1
json_is "d[0]['actor']" admin:alice
run 0 "$CLI" audit search --action enroll --instance vm-2 --json --db "$DB"
cp "$OUT" "$TMP/audit-offline.json"
same_json "$TMP/audit-remote.json" "$TMP/audit-offline.json"
run 0 "$CLI" audit search --outcome forbidden --jsonl "${AUDITOR[@]}"
[ "$(wc -l <"$OUT")" -ge 1 ] || fail "no forbidden event"
python3 -c "
import json, sys
for line in open(sys.argv[1]):
    assert json.loads(line)['outcome'] == 'forbidden'" "$OUT" || fail "--outcome did not filter"
run 0 "$CLI" audit search --since 2000-01-01T00:00:00Z --until 2000-01-02T00:00:00Z --json
json_is "d" "[]"
run 0 "$CLI" audit search --action admin.instance_delete --limit 1
out_has "admin.instance_delete +vm-del +ok +alice"
run 2 "$CLI" audit search --since yesterday
err_has "RFC 3339"
run 0 "$CLI" audit tail --limit 3 --jsonl
[ "$(wc -l <"$OUT")" = 3 ] || fail "tail --limit 3 printed other than 3 events"
run 2 "$CLI" audit tail --follow --json
"$CLI" audit tail --limit 1 --follow --jsonl >"$TMP/follow.out" 2>"$TMP/follow.err" &
FOLLOW_PID=$!
sleep 1.5
run 0 "$CLI" instance enroll followed-1 --fleet lab
sleep 2.5
kill -TERM "$FOLLOW_PID"
FOLLOW_RC=0
wait "$FOLLOW_PID" || FOLLOW_RC=$?
[ "$FOLLOW_RC" = 0 ] || fail "audit tail --follow exited $FOLLOW_RC on SIGTERM"
grep -q '"action":"enroll","instance":"followed-1"' "$TMP/follow.out" ||
    fail "tail --follow missed the enrollment"
# At most the row of the command before it (the tail's starting point), never its own polls.
[ "$(grep -c '"action":"admin.audit_search"' "$TMP/follow.out")" -le 1 ] ||
    fail "tail --follow printed its own polls"

echo "-- kbs-key: this service's, and trusted peers"
run 0 "$CLI" kbs-key show --json
cp "$OUT" "$TMP/kbs-remote.json"
json_is "d['alg']" ES384
run 0 env -u VTPMCA_SERVER "$CLI" kbs-key show --json --state-dir "$STATE"
cp "$OUT" "$TMP/kbs-offline.json"
same_json "$TMP/kbs-remote.json" "$TMP/kbs-offline.json"
python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pem'], end='')" \
    "$TMP/kbs-remote.json" >"$TMP/own.pem"
[ "$(openssl pkey -pubin -in "$TMP/own.pem" -outform DER | sha256sum | cut -d' ' -f1)" = \
    "$(json "d['fingerprint']")" ] || fail "the fingerprint is not SHA-256 of the DER key"
openssl ecparam -name prime256v1 -genkey -noout -out "$TMP/peer.key" 2>/dev/null
openssl ec -in "$TMP/peer.key" -pubout -out "$TMP/peer.pub" 2>/dev/null
PEER_FP=$(openssl pkey -pubin -in "$TMP/peer.pub" -outform DER | sha256sum | cut -d' ' -f1)
run 0 "$CLI" kbs-key trust "$TMP/peer.pub"
out_has "^trusted KBS key $PEER_FP \(ES256\)"
[ -s "$TRUSTED/$PEER_FP.pem" ] || fail "no $PEER_FP.pem in trusted_kbs_keys_dir"
run 0 "$CLI" kbs-key trust "$TMP/peer.pub"
out_has "was trusted already"
run 1 "$CLI" kbs-key trust "$TMP/own.pem"
err_has "own KBS key" && err_one_line
run 1 "$CLI" kbs-key trust "$TMP/peer.pub" "${AUDITOR[@]}"
err_has "forbidden"
run 2 "$CLI" kbs-key trust "$TMP/peer.key"
err_has "not a PEM public key"
run 0 "$CLI" kbs-key list --json "${AUDITOR[@]}"
json_is "[k['fingerprint'] for k in d['keys']]" "['$PEER_FP']"
run 0 env -u VTPMCA_SERVER "$CLI" kbs-key list --json --trusted-dir "$TRUSTED"
json_is "[k['fingerprint'] for k in d['keys']]" "['$PEER_FP']"
run 0 "$CLI" kbs-key untrust "$PEER_FP"
out_has "^no longer trusting KBS key $PEER_FP"
[ ! -e "$TRUSTED/$PEER_FP.pem" ] || fail "the key file is still there"
run 1 "$CLI" kbs-key untrust "$PEER_FP"
run 0 env -u VTPMCA_SERVER "$CLI" kbs-key trust "$TMP/peer.pub" --trusted-dir "$TMP/offline-trusted"
[ -s "$TMP/offline-trusted/$PEER_FP.pem" ] || fail "offline trust wrote no file"
run 2 env -u VTPMCA_SERVER "$CLI" kbs-key list
err_has "trusted-dir"

echo "-- ledger: show, require-admin-clear and clear through the daemon"
run 1 "$CLI" ledger show vm-1
err_has "no record" && err_one_line
run 0 "$CLI" ledger require-admin-clear vm-1 on --json
json_is "d['require_admin_clear']" True
json_is "d['has_entry']" False
run 0 "$CLI" ledger show vm-1 --json "${AUDITOR[@]}"
cp "$OUT" "$TMP/ledger-remote.json"
run 0 "$CLI" ledger show vm-1 --json --db "$DB"
cp "$OUT" "$TMP/ledger-offline.json"
same_json "$TMP/ledger-remote.json" "$TMP/ledger-offline.json"
run 0 "$CLI" ledger show vm-1
out_has "^require admin clear: yes$"
out_has "^locked: +no$"
run 0 "$CLI" ledger clear vm-1 --reset
out_has "^counter: +none"
run 1 "$CLI" ledger clear vm-1 "${AUDITOR[@]}"
err_has "forbidden"
run 2 "$CLI" ledger clear vm-1 --db "$DB"
err_has "only vtpmcad writes the ledger" && err_one_line
run 2 "$CLI" ledger require-admin-clear vm-1 maybe
run 1 "$CLI" ledger require-admin-clear ghost on
run 0 "$CLI" ledger require-admin-clear vm-1 off --json
json_is "d['require_admin_clear']" False

echo "-- the daemon stops cleanly"
kill -TERM "$DAEMON_PID"
RC=0
wait "$DAEMON_PID" || RC=$?
DAEMON_PID=
[ "$RC" = 0 ] || { tail -20 "$TMP/daemon.log" >&2; fail "vtpmcad exited $RC"; }

echo "PASS: admin_cli"
