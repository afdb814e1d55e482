#!/usr/bin/env bash
# End-to-end test of the vtpmca CLI with the genuine Milan reports in ../shared.
# Usage: bash tests/integration/cli.sh BUILD_DIR
set -euo pipefail

BUILD=$(cd "${1:?usage: cli.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
SNP=$SRC/../shared/testdata/snp
AMD=$SRC/../shared/amd
CLI=$BUILD/vtpmca
AT=2024-06-01T00:00:00Z
MEASUREMENT_A=b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
OUT=$TMP/stdout
ERR=$TMP/stderr
DB=$TMP/vtpmca.db

# shellcheck source=lib/common.bash
source "$(dirname "$0")/lib/common.bash"
# This test matches output case-insensitively.
out_has() { grep -qiE -- "$1" "$OUT" || fail "stdout lacks /$1/"; }
err_has() { grep -qiE -- "$1" "$ERR" || fail "stderr lacks /$1/"; }

echo "-- help on every level"
run 0 "$CLI" --help
out_has "^Usage: vtpmca <group> <command>"
for group in snp fleet policy; do
    run 0 "$CLI" "$group" --help
    out_has "^Usage: vtpmca $group <command>"
done
for cmd in "snp verify" "snp show" "snp import-vcek" "fleet create" "fleet list" \
    "policy create" "policy update" "policy show" "policy list" "policy check"; do
    # shellcheck disable=SC2086
    run 0 "$CLI" $cmd --help
    out_has "^Usage: vtpmca $cmd"
    out_has "--help"
done
run 0 "$CLI" --version
out_has "^vtpmca [0-9]"

echo "-- usage errors exit 2 with one line"
run 2 "$CLI"
run 2 "$CLI" frobnicate
err_has "unknown command group 'frobnicate'" && err_one_line
run 2 "$CLI" snp
run 2 "$CLI" snp frobnicate
err_has "unknown command 'frobnicate'" && err_one_line
run 2 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --bogus
err_has "unknown option '--bogus'" && err_one_line
run 2 "$CLI" snp verify
err_has "missing --report" && err_one_line
run 2 "$CLI" snp verify --report
err_has "needs a value" && err_one_line
run 2 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --report "$SNP/milan-v2-report.bin"
err_has "given twice"
run 2 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --no-builtin
err_has "needs --roots"
run 2 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --no-builtin --trust-builtin --roots "$AMD"
err_has "exclude each other"
for bad_at in 2024-06-01 2024-06-01T00:00:00 2024-13-01T00:00:00Z 2023-02-29T00:00:00Z \
    2024-06-01T24:00:00Z "2024-06-01T00:00:00+2:00" 2024-06-01T00:00:00Zjunk; do
    run 2 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --at "$bad_at"
    err_has "--at '.*': expected an RFC 3339 time" && err_one_line
done
run 2 "$CLI" snp show --report "$SNP/milan-v2-report.bin" --product sparc
err_has "--product 'sparc'"
run 2 "$CLI" fleet create --db "$DB"
err_has "missing NAME"
run 2 "$CLI" fleet create a b --db "$DB"
err_has "unexpected argument 'b'"

echo "-- snp show"
run 0 "$CLI" snp show --report "$SNP/milan-v2-report.bin"
out_has "^version +2$"
out_has "^measurement +$MEASUREMENT_A$"
run 0 "$CLI" snp show --report "$SNP/milan-v2-report.bin" --json
json_is 'd["verified"]' False
json_is 'd["claims"]["version"]' 2
json_is 'd["claims"]["measurement"]' "$MEASUREMENT_A"
json_is 'd["claims"]["policy"]["debug"]' True
json_is '"bootloader" in d["claims"]["reported_tcb"]' False # v2: no product, no TCB layout
run 0 "$CLI" snp show --report "$SNP/milan-v2-report.bin" --product milan --json
json_is 'd["claims"]["reported_tcb"]["microcode"]' 68

echo "-- snp verify: genuine report with its VCEK"
run 0 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --vcek "$SNP/milan-v2-vcek.der" --at "$AT"
out_has "^trust: +pinned AMD roots$"
out_has "^evidence: +VERIFIED at $AT"
out_has "^result: +ACCEPTED"
run 0 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --vcek "$SNP/milan-v2-vcek.der" --at "$AT" --json
json_is 'd["verified"]' True
json_is 'd["claims"]["measurement"]' "$MEASUREMENT_A"
json_is 'd["trust"]["chained_to"]' builtin
json_is 'd["verdict"]' None
json_is 'd["at"]' "$AT"
# The same instant written with an offset.
run 0 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --vcek "$SNP/milan-v2-vcek.der" \
    --at 2024-06-01T02:00:00.5+02:00 --json
json_is 'd["at"]' "$AT"

echo "-- snp verify: policies"
cat >"$TMP/nodebug.json" <<EOF
{"measurements": ["$MEASUREMENT_A"], "allow_debug": false}
EOF
cat >"$TMP/debug-ok.json" <<EOF
{"measurements": ["$MEASUREMENT_A"], "allow_debug": true}
EOF
run 1 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --vcek "$SNP/milan-v2-vcek.der" --at "$AT" \
    --policy "$TMP/nodebug.json"
out_has "^evidence: +VERIFIED"
out_has "failed debug: "
out_has "^result: +REJECTED"
err_has "rejected by policy .*: failed debug$" && err_one_line
run 1 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --vcek "$SNP/milan-v2-vcek.der" --at "$AT" \
    --policy "$TMP/nodebug.json" --json
json_is 'd["verified"]' False
json_is 'd["evidence_verified"]' True
json_is '[f["check"] for f in d["verdict"]["failed"]]' "['debug']"
json_is 'd["ear"]["submods"]["SEV-SNP"]["ear.status"]' contraindicated
run 0 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --vcek "$SNP/milan-v2-vcek.der" --at "$AT" \
    --policy "$TMP/debug-ok.json" --json
json_is 'd["verified"]' True
json_is 'd["verdict"]["pass"]' True
json_is 'd["ear"]["submods"]["SEV-SNP"]["ear.status"]' affirming

echo "-- snp verify: evidence that does not verify exits 1"
run 1 "$CLI" snp verify --report "$SNP/milan-v2-report-b.bin" --vcek "$SNP/milan-v2-vcek.der" --at "$AT"
out_has "^evidence: +NOT VERIFIED"
err_has "evidence not verified" && err_one_line
run 1 "$CLI" snp verify --report "$SNP/milan-v2-report-b.bin" --vcek "$SNP/milan-v2-vcek.der" --at "$AT" --json
json_is 'd["verified"]' False
json_is 'd["claims"]' None
json_is 'd["ear"]["submods"]["SEV-SNP"]["ear.status"]' contraindicated
run 1 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --vcek "$SNP/milan-v2-vcek.der" \
    --at 2035-01-01T00:00:00Z
err_has "expired"
# A report whose signature was altered (one byte of r flipped).
python3 - "$SNP/milan-v2-report.bin" "$TMP/tampered.bin" <<'EOF'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[0x2A0] ^= 1
open(sys.argv[2], "wb").write(data)
EOF
run 1 "$CLI" snp verify --report "$TMP/tampered.bin" --vcek "$SNP/milan-v2-vcek.der" --at "$AT"
err_has "signature"
# Without a VCEK and without a database nothing can verify the report.
run 1 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --at "$AT"
err_has "no VCEK"

echo "-- snp verify: bad input files exit 2"
run 2 "$CLI" snp verify --report "$TMP/missing.bin"
err_has "cannot open" && err_one_line
head -c 100 /dev/urandom >"$TMP/garbage.bin"
run 2 "$CLI" snp verify --report "$TMP/garbage.bin"
err_has "size" && err_one_line
head -c 1183 "$SNP/milan-v2-report.bin" >"$TMP/truncated.bin"
run 2 "$CLI" snp verify --report "$TMP/truncated.bin"
err_has "1183" && err_one_line
echo "this is not hex or base64!" >"$TMP/text.txt"
run 2 "$CLI" snp verify --report "$TMP/text.txt"
err_has "not a report" && err_one_line
run 2 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --vcek "$TMP/garbage.bin" --at "$AT"
err_one_line
run 2 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --vcek "$SNP/milan-v2-vcek.der" \
    --policy "$TMP/missing.json"
err_has "cannot open" && err_one_line
run 2 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --db "$TMP/missing.db"
err_has "no database" && err_one_line
[ ! -e "$TMP/missing.db" ] || fail "a read-only command created a database"

echo "-- snp verify: hex, base64 and PEM copies give the same result"
run 0 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --vcek "$SNP/milan-v2-vcek.der" --at "$AT" --json
cp "$OUT" "$TMP/binary.json"
od -An -v -tx1 "$SNP/milan-v2-report.bin" | tr -d " " >"$TMP/report.hex" # hex, one line per 16 bytes
base64 "$SNP/milan-v2-report.bin" >"$TMP/report.b64"
base64 -w0 "$SNP/milan-v2-report.bin" | tr '+/' '-_' | tr -d '=' >"$TMP/report.b64url"
openssl x509 -inform der -in "$SNP/milan-v2-vcek.der" -out "$TMP/vcek.pem"
base64 "$SNP/milan-v2-vcek.der" >"$TMP/vcek.b64"
for copy in report.hex report.b64 report.b64url; do
    run 0 "$CLI" snp verify --report "$TMP/$copy" --vcek "$SNP/milan-v2-vcek.der" --at "$AT" --json
    cmp -s "$OUT" "$TMP/binary.json" || fail "$copy gives a different result"
done
for copy in vcek.pem vcek.b64; do
    run 0 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --vcek "$TMP/$copy" --at "$AT" --json
    cmp -s "$OUT" "$TMP/binary.json" || fail "$copy gives a different result"
done

echo "-- snp import-vcek, then verify from the database"
run 0 "$CLI" snp import-vcek --db "$DB" --vcek "$SNP/milan-v2-vcek.der"
out_has "^imported Milan VCEK .*TCB bl=2 tee=0 snp=5 ucode=68"
run 0 "$CLI" snp import-vcek --db "$DB" --vcek "$TMP/vcek.pem" --product milan --json
json_is 'd["chained_to"]' builtin
run 0 "$CLI" snp import-vcek --db "$DB" --vcek "$SNP/milan-v2-vcek-b.der" --json
json_is 'd["tcb_raw"]' 0x7308000000000003
run 0 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --db "$DB" --at "$AT"
out_has "certificate from the database"
out_has "^result: +ACCEPTED"
run 0 "$CLI" snp verify --report "$SNP/milan-v2-report-b.bin" --db "sqlite:$DB" --at "$AT" --json
json_is 'd["claims"]["vcek_source"]' store
# Trusting AMD's roots from a directory as well: verified, and the output says whether a
# non-builtin root was needed.
run 0 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --db "$DB" --at "$AT" --roots "$AMD"
out_has "^trust: +pinned AMD roots plus NON-BUILTIN roots from $AMD"
run 0 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --db "$DB" --at "$AT" --no-builtin \
    --roots "$AMD" --json
json_is 'd["trust"]["chained_to"]' non-builtin
json_is 'd["trust"]["builtin_roots"]' False
# Refusals change nothing: no database is created for a certificate that does not chain.
mkdir "$TMP/genoa-only"
cp "$AMD"/genoa_* "$TMP/genoa-only/"
run 1 "$CLI" snp import-vcek --db "$TMP/refused.db" --vcek "$SNP/milan-v2-vcek.der" --no-builtin \
    --roots "$TMP/genoa-only"
err_has "refused" && err_one_line
[ ! -e "$TMP/refused.db" ] || fail "a refused certificate created a database"
run 1 "$CLI" snp import-vcek --db "$TMP/refused.db" --vcek "$SNP/milan-v2-vcek.der" \
    --at 2035-01-01T00:00:00Z
err_has "expired"
run 2 "$CLI" snp import-vcek --db "$TMP/refused.db" --vcek "$SNP/milan-v2-vcek.der" --product genoa
err_has "is a Milan certificate"
run 2 "$CLI" snp import-vcek --db "$TMP/refused.db" --vcek "$SNP/milan-v2-report.bin"
err_one_line
[ ! -e "$TMP/refused.db" ] || fail "a refused certificate created a database"

echo "-- fleets"
run 0 "$CLI" fleet create prod --description "Production VMs" --db "$DB"
out_has "created fleet prod"
run 1 "$CLI" fleet create prod --db "$DB"
err_has "exists" && err_one_line
run 2 "$CLI" fleet create "bad name" --db "$DB"
err_one_line
run 0 "$CLI" fleet create staging --db "$DB" --json
json_is 'd["fleet"]' staging
run 0 "$CLI" fleet list --db "$DB"
out_has "^prod +- .*Production VMs$"
run 0 "$CLI" fleet list --db "$DB" --json
json_is '[f["name"] for f in d]' "['prod', 'staging']"
run 2 "$CLI" fleet list --db "$TMP/missing.db"
err_has "no database"

echo "-- policies: create, update, show, list"
cat >"$TMP/policy-v2.json" <<EOF
{"measurements": ["$MEASUREMENT_A", "$(printf 'AB%.0s' {1..48})"], "allow_debug": true, "vmpl": 0}
EOF
echo '{"allow_debug": false, "frobnicate": 1}' >"$TMP/unknown-key.json"
echo '{"measurements": ["abcd"]}' >"$TMP/short-hex.json"
echo '{"measurements": [' >"$TMP/not-json.json"
run 1 "$CLI" policy update --fleet prod --file "$TMP/nodebug.json" --db "$DB"
err_has "no policy yet"
run 0 "$CLI" policy create --fleet prod --file "$TMP/nodebug.json" --db "$DB"
out_has "^fleet prod: policy version 1$"
run 1 "$CLI" policy create --fleet prod --file "$TMP/nodebug.json" --db "$DB"
err_has "already has a policy \(version 1\)"
run 0 "$CLI" policy update --fleet prod --file "$TMP/policy-v2.json" --db "$DB" --json
json_is 'd["version"]' 2
run 1 "$CLI" policy create --fleet nope --file "$TMP/nodebug.json" --db "$DB"
err_has "nope" && err_one_line
# Invalid documents are refused with the key named, and nothing is stored.
run 2 "$CLI" policy update --fleet prod --file "$TMP/unknown-key.json" --db "$DB"
err_has "frobnicate" && err_one_line
run 2 "$CLI" policy update --fleet prod --file "$TMP/short-hex.json" --db "$DB"
err_has "measurements\[0\]" && err_one_line
run 2 "$CLI" policy update --fleet prod --file "$TMP/not-json.json" --db "$DB"
err_has "invalid policy" && err_one_line
run 0 "$CLI" policy list --fleet prod --db "$DB"
out_has "^1 +[0-9T:Z-]+ +cli:"
out_has "^2 +[0-9T:Z-]+ +cli:"
[ "$(grep -cE '^[0-9]+ ' "$OUT")" -eq 2 ] || fail "expected exactly versions 1 and 2"
run 0 "$CLI" policy list --fleet prod --db "$DB" --json
json_is '[v["version"] for v in d]' "[1, 2]"
run 0 "$CLI" policy show --fleet prod --db "$DB"
out_has "^fleet prod, policy version 2:"
out_has '"allow_debug": true'
out_has "abababab"
run 0 "$CLI" policy show --fleet prod --version 1 --db "$DB" --json
json_is 'd["version"]' 1
json_is 'd["policy"]["allow_debug"]' False
json_is 'd["policy"]["measurements"]' "['$MEASUREMENT_A']"
run 1 "$CLI" policy show --fleet prod --version 3 --db "$DB"
err_has "version 3" && err_one_line
run 2 "$CLI" policy show --fleet prod --version 0 --db "$DB"
run 1 "$CLI" policy list --fleet nope --db "$DB"
err_has "nope"
run 0 "$CLI" fleet list --db "$DB" --json
json_is '[f["latest_policy"] for f in d]' "[2, 0]"
# A stored policy is usable as a policy file again.
run 0 "$CLI" policy show --fleet prod --db "$DB" --json
json "json.dumps(d['policy'])" >"$TMP/exported.json"
run 0 "$CLI" snp verify --report "$SNP/milan-v2-report.bin" --db "$DB" --at "$AT" \
    --policy "$TMP/exported.json"

echo "-- policy check"
run 0 "$CLI" policy check --file "$TMP/policy-v2.json"
out_has "is valid"
run 0 "$CLI" policy check --file "$TMP/policy-v2.json" --json
json_is 'd["valid"]' True
json_is 'd["policy"]["allow_debug"]' True
run 1 "$CLI" policy check --file "$TMP/unknown-key.json"
err_has "frobnicate" && err_one_line
run 1 "$CLI" policy check --file "$TMP/short-hex.json" --json
json_is 'd["valid"]' False
json_is '"measurements[0]" in d["error"]' True
run 2 "$CLI" policy check --file "$TMP/missing.json"
err_has "cannot open"

echo "cli.sh: all checks passed"
