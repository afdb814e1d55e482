#!/usr/bin/env bash
# The "run it" demo: installs dependencies, builds vtpmca into build/, starts vtpmcad on
# 127.0.0.1 with a fresh state dir (state/demo) and a TEST root, and walks through offline and
# online SEV-SNP verification and the KBS persistence-key release to a simulated SVSM
# (svsm-sim: two boots of one instance that also get EK/IAK certificates, then a refused one),
# and the rollback ledger catching a restored older vTPM state. Exits non-zero as soon as a step does not behave as expected.
# Usage: bash scripts/demo.sh   (VTPMCA_BUILD_DIR=DIR builds and runs from DIR instead)
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=$PWD
BUILD=${VTPMCA_BUILD_DIR:-$ROOT/build}
STATE=$ROOT/state/demo
SNP=$ROOT/../shared/testdata/snp
TESTROOT=$STATE/TEST-ROOT-not-amd
EVIDENCE=$STATE/evidence
DB=$STATE/vtpmca.db # the daemon's default database inside its state dir
AT=2024-06-01T00:00:00Z
DAEMON_PID=

step() { printf '\n=== %s ===\n' "$*"; }
fail() {
    echo "demo: FAILED: $*" >&2
    exit 1
}
# expect_exit CODE CMD...: runs CMD, shows its output, and checks its exit status.
expect_exit() {
    local want=$1 got=0
    shift
    echo "\$ ${*#"$ROOT"/}" >&2 # stderr, so that redirecting the output keeps it on screen
    "$@" || got=$?
    [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want"
}
# Key "name": value pairs of a JSON answer, one per line (no jq needed).
json_fields() { grep -oE "\"($1)\": *(\"[^\"]*\"|[^,}]*)" "$2" || true; }

cleanup() {
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

step "1. Dependencies (Debian packages)"
bash scripts/install-deps.sh

step "2. Build into ${BUILD#"$ROOT"/}/"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
VTPMCA=$BUILD/vtpmca
VTPMCAD=$BUILD/vtpmcad
TESTROOT_TOOL=$BUILD/snp-testroot
SVSM_SIM=$BUILD/svsm-sim

step "3. Fresh state directory state/demo"
rm -rf "$STATE"
mkdir -p "$STATE" "$EVIDENCE"
chmod 700 "$STATE"
echo "state dir: $STATE"

step "4. A TEST root and synthetic evidence (snp-testroot; NOT AMD, for demos only)"
"$TESTROOT_TOOL" init --dir "$TESTROOT" --product milan --bits 2048
CHIP_ID=$(printf 'c0ffee%.0s' {1..21})00
TCB=bl=3,tee=0,snp=8,ucode=115
GOOD_MEASUREMENT=$(printf '5a%.0s' {1..48})
BAD_MEASUREMENT=$(printf 'ee%.0s' {1..48})
"$TESTROOT_TOOL" cert --dir "$TESTROOT" --product milan --chip-id "$CHIP_ID" --tcb "$TCB" \
    --out "$EVIDENCE/vcek.der" --key-out "$EVIDENCE/vcek.key.pem"
for kind in good bad; do
    measurement=$GOOD_MEASUREMENT
    [ "$kind" = good ] || measurement=$BAD_MEASUREMENT
    "$TESTROOT_TOOL" report --product milan --key "$EVIDENCE/vcek.key.pem" --chip-id "$CHIP_ID" \
        --tcb "$TCB" --version 3 --measurement "$measurement" --out "$EVIDENCE/$kind-report.bin"
done
ls -l "$TESTROOT" "$EVIDENCE"

step "5. A fleet and its policy (vtpmca CLI, offline on the daemon's database)"
cat >"$STATE/demo-policy.json" <<EOF
{
  "measurements": ["$GOOD_MEASUREMENT"],
  "allow_debug": false,
  "vmpl": 0,
  "min_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}
}
EOF
expect_exit 0 "$VTPMCA" policy check --file "$STATE/demo-policy.json"
expect_exit 0 "$VTPMCA" fleet create demo --description "demo fleet (TEST root)" --db "$DB"
expect_exit 0 "$VTPMCA" policy create --fleet demo --file "$STATE/demo-policy.json" --db "$DB"
expect_exit 0 "$VTPMCA" fleet list --db "$DB"
# The EK/IAK certificate authority: a root and an issuing CA in state/demo/ca, loaded by the
# daemon at start. (In production the root key then moves offline.)
expect_exit 0 "$VTPMCA" ca init --state-dir "$STATE" --subject "O=vtpmca demo,CN=vtpmca demo"

step "6. Start vtpmcad on 127.0.0.1 (ephemeral port), trusting the TEST root explicitly"
"$VTPMCAD" --state-dir "$STATE" --port 0 --port-file "$STATE/vtpmcad.port" \
    --extra-roots-dir "$TESTROOT" --log-level info 2>"$STATE/vtpmcad.log" &
DAEMON_PID=$!
for _ in $(seq 1 100); do
    [ -s "$STATE/vtpmcad.port" ] && break
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "vtpmcad exited during start-up: $(cat "$STATE/vtpmcad.log")"
    sleep 0.1
done
[ -s "$STATE/vtpmcad.port" ] || fail "vtpmcad did not write its port file within 10 s"
URL=http://127.0.0.1:$(cat "$STATE/vtpmcad.port")
echo "vtpmcad pid $DAEMON_PID listening on $URL (log: state/demo/vtpmcad.log)"
grep -iE "level=warn.*root" "$STATE/vtpmcad.log" || true

step "7. GET /healthz"
curl -sS --fail "$URL/healthz" | tee "$STATE/healthz.json"
echo
grep -qE '"status": *"ok"' "$STATE/healthz.json" || fail "healthz is not ok"

step "8. Offline: a genuine AMD Milan report (pinned AMD roots, validity pinned at $AT)"
expect_exit 0 "$VTPMCA" snp verify --report "$SNP/milan-v2-report.bin" \
    --vcek "$SNP/milan-v2-vcek.der" --at "$AT" >"$STATE/genuine.txt"
grep -E "^(trust|evidence|result):|^  (measurement|policy|reported_tcb) " "$STATE/genuine.txt"
grep -q "^result: *ACCEPTED" "$STATE/genuine.txt" || fail "the genuine report was not accepted"

echo
echo "The same report against a policy that forbids DEBUG (the report has DEBUG set):"
GENUINE_MEASUREMENT=$(sed -nE 's/^  measurement +([0-9a-f]{96})$/\1/p' "$STATE/genuine.txt")
[ -n "$GENUINE_MEASUREMENT" ] || fail "no measurement in the verify output"
cat >"$STATE/no-debug-policy.json" <<EOF
{"measurements": ["$GENUINE_MEASUREMENT"], "allow_debug": false}
EOF
expect_exit 1 "$VTPMCA" snp verify --report "$SNP/milan-v2-report.bin" \
    --vcek "$SNP/milan-v2-vcek.der" --at "$AT" --policy "$STATE/no-debug-policy.json" \
    >"$STATE/genuine-nodebug.txt"
grep -E "^(policy|  failed|result)" "$STATE/genuine-nodebug.txt"
grep -q "^  failed debug:" "$STATE/genuine-nodebug.txt" || fail "the rejection does not name debug"

# verify_online KIND: POSTs a synthetic report and its VCEK to the daemon for fleet "demo".
verify_online() {
    local kind=$1
    printf '{"fleet": "demo", "report": "%s", "vcek": "%s"}' \
        "$(base64 -w0 "$EVIDENCE/$kind-report.bin")" "$(base64 -w0 "$EVIDENCE/vcek.der")" \
        >"$STATE/$kind-request.json"
    echo "\$ curl -X POST $URL/v1/snp/verify  (fleet demo, $kind-report.bin + vcek.der)"
    curl -sS --fail -X POST -H 'Content-Type: application/json' \
        --data-binary @"$STATE/$kind-request.json" "$URL/v1/snp/verify" >"$STATE/$kind-response.json"
    json_fields 'verified|fleet|policy_version|ear.status|check|error' "$STATE/$kind-response.json"
}

step "9. Online: POST /v1/snp/verify with a synthetic report that passes the policy"
verify_online good
grep -qE '"verified": *true' "$STATE/good-response.json" || fail "the good report was not verified"
grep -qE '"ear.status": *"affirming"' "$STATE/good-response.json" || fail "EAR status is not affirming"

step "10. Online: the same chip with a wrong measurement is rejected"
verify_online bad
grep -qE '"verified": *false' "$STATE/bad-response.json" || fail "the bad report was accepted"
grep -qE '"check": *"measurement"' "$STATE/bad-response.json" ||
    fail "the rejection does not name the measurement check"

step "11. GET /metrics (excerpt)"
curl -sS --fail "$URL/metrics" >"$STATE/metrics.txt"
grep -E '^vtpmca_(snp_verifications_total|http_requests_total)' "$STATE/metrics.txt" | head -12
grep -qE '^vtpmca_snp_verifications_total\{outcome="pass"\} 1$' "$STATE/metrics.txt" ||
    fail "metrics do not count the passing verification"

step "12. A simulated SVSM machine (svsm-sim, TEST VCEK) and its enrolled instance"
SVSM_PLATFORM=$STATE/svsm-platform
SVSM_STATE=$STATE/svsm-vm1
"$SVSM_SIM" platform-init --platform "$SVSM_PLATFORM" --test-root "$TESTROOT" --product milan
expect_exit 0 "$VTPMCA" snp import-vcek --db "$DB" --vcek "$SVSM_PLATFORM/vcek.der" \
    --roots "$TESTROOT"
expect_exit 0 "$VTPMCA" instance enroll vm1 --fleet demo --db "$DB" | tee "$STATE/enroll-vm1.txt"
RESOURCE=$(sed -nE 's/^resource path: +(.+)$/\1/p' "$STATE/enroll-vm1.txt")
[ -n "$RESOURCE" ] || fail "instance enroll printed no resource path"

# --instance: the rollback ledger knows instances by id; every state write is reported to it.
SVSM_BOOT=("$SVSM_SIM" boot --server "$URL" --platform "$SVSM_PLATFORM" --state "$SVSM_STATE"
    --resource "$RESOURCE" --instance vm1)
ek_of() { sed -nE 's/^ +EK RSA-2048 sha256 ([0-9a-f]{64}).*$/\1/p' "$STATE/$1.txt"; }

step "13. KBS: the first boot of vm1 receives its persistence key and makes a new vTPM"
expect_exit 0 "${SVSM_BOOT[@]}" --measurement "$GOOD_MEASUREMENT" >"$STATE/boot-1.txt"
cat "$STATE/boot-1.txt"
grep -q "manufactured a new vTPM" "$STATE/boot-1.txt" || fail "the first boot made no vTPM"
[ -n "$(ek_of boot-1)" ] || fail "the first boot printed no EK"
grep -q -- "-> accepted (durable" "$STATE/boot-1.txt" || fail "the ledger did not accept the write"
grep -q "^\[C\] certify" "$STATE/boot-1.txt" || fail "the first boot got no certificates"
cp "$SVSM_STATE/vtpm.state" "$STATE/vtpm.state.boot-1" # an old copy, for the rollback attempt

step "13b. The EK certificate vm1 received, checked by an independent tool (openssl)"
EK_SERIAL=$("$VTPMCA" cert list --instance vm1 --db "$DB" | awk '$2 == "ek" { print $1; exit }')
[ -n "$EK_SERIAL" ] || fail "no EK certificate recorded for vm1"
"$VTPMCA" cert show "$EK_SERIAL" --db "$DB" --pem >"$STATE/vm1-ek.pem"
openssl x509 -in "$STATE/vm1-ek.pem" -noout -subject -issuer -ext extendedKeyUsage,subjectAltName
"$VTPMCA" ca export-keylime "$STATE/keylime-certs" --state-dir "$STATE" >/dev/null
openssl verify -CAfile "$STATE/keylime-certs/vtpmca-root-ca.pem" \
    -untrusted "$STATE/keylime-certs/vtpmca-issuing-ca.pem" "$STATE/vm1-ek.pem" ||
    fail "openssl does not verify vm1's EK certificate against the CA chain"

step "14. KBS: the second boot of vm1 reopens its vTPM with the released key (same EK)"
expect_exit 0 "${SVSM_BOOT[@]}" --measurement "$GOOD_MEASUREMENT" >"$STATE/boot-2.txt"
grep -E "^\[|EK RSA-2048|update counter|ledger|boot OK" "$STATE/boot-2.txt"
[ "$(ek_of boot-2)" = "$(ek_of boot-1)" ] || fail "the reopened vTPM has another EK"
grep -q "(same as recorded)" "$STATE/boot-2.txt" || fail "the second boot did not check the EK"

step "15. KBS: a boot with a wrong measurement is refused and changes nothing"
cp "$SVSM_STATE/vtpm.state" "$STATE/vtpm.state.before"
expect_exit 1 "${SVSM_BOOT[@]}" --measurement "$BAD_MEASUREMENT" >"$STATE/boot-refused.txt"
grep -E "^\[|REFUSED" "$STATE/boot-refused.txt"
grep -q "^boot REFUSED at resource" "$STATE/boot-refused.txt" ||
    fail "the refusal does not come from the key release"
cmp -s "$SVSM_STATE/vtpm.state" "$STATE/vtpm.state.before" ||
    fail "the refused boot changed the vTPM state"
echo "vTPM state unchanged"

step "16. Rollback ledger: the host restores the vTPM state from after the first boot"
cp "$SVSM_STATE/vtpm.state" "$STATE/vtpm.state.latest"
cp "$STATE/vtpm.state.boot-1" "$SVSM_STATE/vtpm.state"
expect_exit 1 "${SVSM_BOOT[@]}" --measurement "$GOOD_MEASUREMENT" >"$STATE/boot-rollback.txt" \
    2>"$STATE/boot-rollback.err"
grep -E "^\[L\]|counter|REFUSED" "$STATE/boot-rollback.txt"
grep -E '^\$ |REFUSED' "$STATE/boot-rollback.err" # the command, then the reason
grep -q "^boot REFUSED at ledger" "$STATE/boot-rollback.txt" ||
    fail "the rollback attempt was not caught by the ledger"
grep -q "rollback: the image's counter" "$STATE/boot-rollback.err" ||
    fail "the refusal does not say rollback"
cmp -s "$SVSM_STATE/vtpm.state" "$STATE/vtpm.state.boot-1" || fail "the refused boot wrote a state"
echo "rollback attempt caught: the ledger holds a newer state of vm1, nothing was written"

step "17. Rollback ledger: the genuine latest state boots again; ledger metrics"
cp "$STATE/vtpm.state.latest" "$SVSM_STATE/vtpm.state"
expect_exit 0 "${SVSM_BOOT[@]}" --measurement "$GOOD_MEASUREMENT" >"$STATE/boot-3.txt"
grep -E "ledger|boot OK" "$STATE/boot-3.txt"
curl -sS --fail "$URL/metrics" | grep -E '^vtpmca_ledger_(advances_total\{result="accepted"\}|commits_total)'

step "18. Stop vtpmcad with SIGTERM"
kill -TERM "$DAEMON_PID"
status=0
wait "$DAEMON_PID" || status=$?
DAEMON_PID=
[ "$status" -eq 0 ] || fail "vtpmcad exited with status $status"
tail -n 2 "$STATE/vtpmcad.log"
echo "vtpmcad exited 0"

printf '\ndemo: every step behaved as expected (state and logs in state/demo)\n'
