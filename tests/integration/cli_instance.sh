#!/usr/bin/env bash
# End-to-end test of `vtpmca instance ...`: enrollment in both key modes, wrap-key, show,
# list, disable/enable, history (the audit log), exit codes and one-line errors, and that
# refused commands change nothing.
# Usage: bash tests/integration/cli_instance.sh BUILD_DIR
set -euo pipefail

BUILD=$(cd "${1:?usage: cli_instance.sh BUILD_DIR}" && pwd)
CLI=$BUILD/vtpmca

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
OUT=$TMP/stdout
ERR=$TMP/stderr
DB=$TMP/state/vtpmca.db
MASTER=$TMP/state/master.key
mkdir -m 700 "$TMP/state"

# shellcheck source=lib/common.bash
source "$(dirname "$0")/lib/common.bash"
instance_count() {
    run 0 "$CLI" instance list --db "$DB" --json
    json "len(d)"
}

HOST_DATA=$(printf '33%.0s' $(seq 32))

echo "-- help"
run 0 "$CLI" instance --help
out_has "^Usage: vtpmca instance <command>"
for cmd in enroll wrap-key show list disable enable history; do
    run 0 "$CLI" instance "$cmd" --help
    out_has "^Usage: vtpmca instance $cmd"
done

echo "-- setup: a fleet"
run 0 "$CLI" fleet create prod --db "$DB"

echo "-- enroll, generated mode: the master key is created beside the database"
[ ! -e "$MASTER" ] || fail "master key exists before the first enrollment"
run 0 "$CLI" instance enroll vm-1 --fleet prod --db "$DB"
out_has "^enrolled instance vm-1 in fleet prod \(key mode generated\)$"
out_has "^resource path: vtpmca/persistence-key/[0-9a-f]{32}$"
err_has "created a new master key in .*/state/master.key" && err_one_line
[ "$(stat -c %a "$MASTER")" = 600 ] || fail "master key mode is not 0600"
[ "$(stat -c %s "$MASTER")" = 32 ] || fail "master key is not 32 bytes"
PATH1=$(sed -n 's/^resource path: //p' "$OUT")

echo "-- enroll, wrapped mode with host_data and a given path (JSON)"
run 0 "$CLI" instance enroll vm-2 --fleet prod --db "$DB" --mode wrapped \
    --host-data "$HOST_DATA" --resource-path default/sample/test --json
[ ! -s "$ERR" ] || fail "a second enrollment reported a new master key"
json_is "d['instance']" vm-2
json_is "d['key_mode']" wrapped
json_is "d['resource_path']" default/sample/test
json_is "d['host_data']" "$HOST_DATA"

echo "-- generated paths differ"
run 0 "$CLI" instance enroll vm-3 --fleet prod --db "$DB" --json
PATH3=$(json "d['resource_path']")
[ "$PATH1" != "$PATH3" ] || fail "two generated resource paths are equal"

echo "-- refused enrollments exit 1 or 2 with one line and store nothing"
run 1 "$CLI" instance enroll vm-1 --fleet prod --db "$DB"
err_has "instance vm-1 is already enrolled" && err_one_line
run 1 "$CLI" instance enroll vm-9 --fleet prod --db "$DB" --resource-path default/sample/test
err_has "resource path" && err_one_line
run 1 "$CLI" instance enroll vm-9 --fleet nowhere --db "$DB"
err_has "unknown fleet nowhere" && err_one_line
run 2 "$CLI" instance enroll "vm 9" --fleet prod --db "$DB"
err_has "instance id" && err_one_line
run 2 "$CLI" instance enroll vm-9 --fleet prod --db "$DB" --mode other
err_has "--mode must be generated or wrapped" && err_one_line
run 2 "$CLI" instance enroll vm-9 --fleet prod --db "$DB" --host-data 1234
err_has "--host-data must be 64 hex digits" && err_one_line
run 2 "$CLI" instance enroll vm-9 --fleet prod --db "$DB" --resource-path a/b
err_has "resource path" && err_one_line
run 2 "$CLI" instance enroll vm-9 --fleet prod --db "$DB" --resource-path a/../c
run 2 "$CLI" instance enroll vm-9 --db "$DB"
err_has "missing --fleet"
run 2 "$CLI" instance enroll vm-9 --fleet prod --db "$TMP/missing.db"
[ ! -e "$TMP/missing.db" ] || fail "a missing database was created"
chmod 644 "$MASTER"
run 2 "$CLI" instance enroll vm-9 --fleet prod --db "$DB"
err_has "mode 0644" && err_one_line
chmod 600 "$MASTER"
[ "$(instance_count)" = 3 ] || fail "refused enrollments changed the instance count"

echo "-- wrap-key"
head -c 48 /dev/urandom >"$TMP/admin.key"
run 0 "$CLI" instance wrap-key vm-2 --key "$TMP/admin.key" --db "$DB"
BLOB=$(cat "$OUT")
python3 - "$BLOB" <<'EOF' || fail "the wrapped key is not a version-1 blob of a 48-byte key"
import base64, sys
text = sys.argv[1]
assert "=" not in text and "+" not in text and "/" not in text  # base64url, no padding
blob = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
assert blob[0] == 1 and len(blob) == 1 + 12 + 48 + 16
EOF
# Only the master key is needed; the blob differs each time (random IV).
run 0 "$CLI" instance wrap-key vm-2 --key "$TMP/admin.key" --master-key "$MASTER" --json
json_is "d['instance']" vm-2
[ "$(json "d['wrapped_key']")" != "$BLOB" ] || fail "two wraps gave the same blob"
run 1 "$CLI" instance wrap-key vm-1 --key "$TMP/admin.key" --db "$DB"
err_has "not in wrapped-key mode" && err_one_line
run 1 "$CLI" instance wrap-key nobody --key "$TMP/admin.key" --db "$DB"
err_has "unknown instance nobody"
head -c 65 /dev/urandom >"$TMP/big.key"
run 2 "$CLI" instance wrap-key vm-2 --key "$TMP/big.key" --db "$DB"
err_has "1 to 64 raw bytes" && err_one_line
: >"$TMP/empty.key"
run 2 "$CLI" instance wrap-key vm-2 --key "$TMP/empty.key" --db "$DB"
run 2 "$CLI" instance wrap-key vm-2 --key "$TMP/admin.key"
err_has "give --master-key FILE or --db FILE"
run 2 "$CLI" instance wrap-key vm-2 --db "$DB"
err_has "missing --key"

echo "-- show and list"
run 0 "$CLI" instance show vm-2 --db "$DB"
out_has "^key mode: +wrapped$"
out_has "^host_data: +$HOST_DATA$"
out_has "^status: +enabled$"
run 0 "$CLI" instance show vm-1 --db "$DB" --json
json_is "d['resource_path']" "$PATH1"
json_is "d['host_data']" None
json_is "'wrapped_key' in d" False
run 1 "$CLI" instance show vm-404 --db "$DB"
err_has "unknown instance vm-404" && err_one_line
run 0 "$CLI" fleet create lab --db "$DB"
run 0 "$CLI" instance enroll lab-1 --fleet lab --db "$DB"
run 0 "$CLI" instance list --db "$DB"
out_has "^INSTANCE"
[ "$(grep -c '^vm-\|^lab-' "$OUT")" = 4 ] || fail "list does not show 4 instances"
run 0 "$CLI" instance list --db "$DB" --fleet lab --json
json_is "[i['instance'] for i in d]" "['lab-1']"
run 1 "$CLI" instance list --db "$DB" --fleet nowhere
err_has "unknown fleet nowhere"

echo "-- disable, enable, history"
run 0 "$CLI" instance disable vm-1 --db "$DB"
out_has "^disabled instance vm-1$"
run 0 "$CLI" instance show vm-1 --db "$DB" --json
json_is "d['disabled']" True
run 0 "$CLI" instance enable vm-1 --db "$DB" --json
json_is "d['disabled']" False
run 1 "$CLI" instance disable ghost --db "$DB"
err_has "unknown instance ghost" && err_one_line
run 0 "$CLI" instance history vm-1 --db "$DB" --json
json_is "[e['action'] for e in d]" "['enroll', 'instance.disable', 'instance.enable']"
json_is "d[0]['outcome']" enrolled
json_is "d[0]['detail']" "fleet=prod key_mode=generated host_data=any"
json_is "d[0]['actor'].startswith('cli:')" True
run 0 "$CLI" instance history vm-1 --db "$DB"
out_has "instance.disable +ok"
run 0 "$CLI" instance history never-enrolled --db "$DB" --json
json_is "d" "[]"

echo "-- the database never holds the admin's key"
if grep -qF -- "$(od -An -tx1 "$TMP/admin.key" | tr -d ' \n')" "$DB"* 2>/dev/null; then
    fail "the admin key appears (hex) in the database"
fi
python3 - "$TMP/admin.key" "$DB" <<'EOF' || fail "the admin key appears in the database files"
import glob, sys
key = open(sys.argv[1], "rb").read()
for path in glob.glob(sys.argv[2] + "*"):
    assert key not in open(path, "rb").read(), path
EOF

echo "PASS: cli_instance"
