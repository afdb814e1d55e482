#!/usr/bin/env bash
# End-to-end test of the CA commands of the vtpmca CLI: ca init|import|show|export-keylime,
# cert list|show|revoke, crl show and c509 encode|decode|verify, cross-checked with the
# openssl command line. Certificates are issued into the database by ca-testissue (the keys of
# fresh libtpms TPMs, recorded as the issuance service records them).
# Usage: bash tests/integration/ca_cli.sh BUILD_DIR
set -euo pipefail

BUILD=$(cd "${1:?usage: ca_cli.sh BUILD_DIR}" && pwd)
CLI=$BUILD/vtpmca
ISSUE=$BUILD/ca-testissue

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
OUT=$TMP/stdout
ERR=$TMP/stderr
STATE=$TMP/state
CA=$STATE/ca
DB=$STATE/vtpmca.db

# shellcheck source=lib/common.bash
source "$(dirname "$0")/lib/common.bash"
mode_of() { stat -c %a "$1"; }
# The DER of a PEM certificate, and the number of certificates in a PEM file.
der_of() { openssl x509 -in "$1" -outform DER; }
pem_count() { grep -c -- "-----BEGIN CERTIFICATE-----" "$1"; }

echo "-- help"
for cmd in "ca init" "ca import" "ca show" "ca export-keylime" "cert list" "cert show" \
    "cert revoke" "crl show" "c509 encode" "c509 decode" "c509 verify"; do
    # shellcheck disable=SC2086
    run 0 "$CLI" $cmd --help
    out_has "^Usage: vtpmca $cmd"
done
run 0 "$CLI" --help
out_has "vtpmca ca +init" && out_has "vtpmca c509 +verify"

echo "-- ca init (defaults: ECDSA P-384 for both CAs, <state-dir>/ca)"
run 0 "$CLI" ca init --state-dir "$STATE"
out_has "^created the CA in $CA"
out_has "keep it offline"
for f in root-ca.pem issuing-ca.pem; do [ "$(mode_of "$CA/$f")" = 644 ] || fail "$f mode"; done
for f in root-ca.key issuing-ca.key; do [ "$(mode_of "$CA/$f")" = 600 ] || fail "$f mode"; done
[ "$(mode_of "$CA")" = 700 ] || fail "CA directory mode"
openssl verify -CAfile "$CA/root-ca.pem" "$CA/issuing-ca.pem" >/dev/null || fail "issuing CA does not chain"
openssl x509 -in "$CA/root-ca.pem" -noout -text | grep -q "ASN1 OID: secp384r1" || fail "root is not P-384"
openssl x509 -in "$CA/issuing-ca.pem" -noout -subject | grep -q "CN = vtpmca EK Issuing CA" ||
    fail "issuing CA subject"

echo "-- a second init changes nothing"
SUM_BEFORE=$(cat "$CA"/* | sha256sum)
run 1 "$CLI" ca init --state-dir "$STATE"
err_has "exists already" && err_one_line
[ "$(cat "$CA"/* | sha256sum)" = "$SUM_BEFORE" ] || fail "a refused init changed the CA"

echo "-- ca init usage errors exit 2 and write nothing"
run 2 "$CLI" ca init --state-dir "$TMP/x" --ca-dir "$TMP/y"
err_has "exclude each other"
run 2 "$CLI" ca init --ca-dir "$TMP/x" --root-alg dsa-1024
err_has "--root-alg"
run 2 "$CLI" ca init --ca-dir "$TMP/x" --subject "OU=nope"
err_has "O and CN"
run 2 "$CLI" ca init --ca-dir "$TMP/x" --subject "CN=$(printf 'n%.0s' $(seq 60))"
err_has "CN must be 1 to"
run 2 "$CLI" ca init --ca-dir "$TMP/x" --root-alg rsa-2048
err_has "root key must be"
[ ! -e "$TMP/x" ] || fail "a refused init left $TMP/x behind"

echo "-- ca init with --root-alg rsa-3072 and --subject"
run 0 "$CLI" ca init --ca-dir "$TMP/rsa" --root-alg rsa-3072 --subject "O=Example Corp, CN=Example vTPM" --json
json_is "d['root']['public_key']" "RSA 3072"
json_is "d['root']['signature_alg']" "sha256WithRSAEncryption"
json_is "d['issuing']['public_key']" "EC P-384"
json_is "d['issuing']['signature_alg']" "sha256WithRSAEncryption"
json_is "d['root_key_present']" "True"
openssl x509 -in "$TMP/rsa/root-ca.pem" -noout -subject | grep -q "O = Example Corp, CN = Example vTPM Root CA" ||
    fail "root subject from --subject"
openssl x509 -in "$TMP/rsa/issuing-ca.pem" -noout -subject | grep -q "CN = Example vTPM Issuing CA" ||
    fail "issuing subject from --subject"
openssl verify -CAfile "$TMP/rsa/root-ca.pem" "$TMP/rsa/issuing-ca.pem" >/dev/null || fail "RSA chain"

echo "-- ca show matches openssl"
run 0 "$CLI" ca show --state-dir "$STATE" --json
json_is "d['dir']" "$CA"
for which in root issuing; do
    want=$(openssl x509 -in "$CA/$which-ca.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)
    json_is "d['$which']['sha256']" "$want"
    want=$(openssl x509 -in "$CA/$which-ca.pem" -noout -serial | sed 's/serial=//' | tr A-F a-f)
    json_is "d['$which']['serial']" "$want"
done
json_is "d['issuing']['issuer']" "$(json "d['root']['subject']")"
run 0 "$CLI" ca show --ca-dir "$CA"
out_has "^root CA:" && out_has "^issuing CA:" && out_has "public key: +EC P-384"
run 2 "$CLI" ca show --ca-dir "$TMP/nothing-here"
err_has "cannot open the CA" && err_one_line

echo "-- ca import (without the root key), and what import refuses"
run 0 "$CLI" ca import --ca-dir "$TMP/imported" --root-cert "$CA/root-ca.pem" \
    --issuing-cert "$CA/issuing-ca.pem" --issuing-key "$CA/issuing-ca.key" --json
json_is "d['root_key_present']" "False"
json_is "d['issuing']['sha256']" "$(openssl x509 -in "$CA/issuing-ca.pem" -outform DER | sha256sum | cut -c1-64)"
cmp <(der_of "$CA/issuing-ca.pem") <(der_of "$TMP/imported/issuing-ca.pem") || fail "imported issuing CA differs"
[ "$(mode_of "$TMP/imported/issuing-ca.key")" = 600 ] || fail "imported key mode"
# The RSA hierarchy's issuing key does not belong to this issuing certificate.
run 1 "$CLI" ca import --ca-dir "$TMP/mismatch" --root-cert "$CA/root-ca.pem" \
    --issuing-cert "$CA/issuing-ca.pem" --issuing-key "$TMP/rsa/issuing-ca.key"
err_has "cannot import" && err_one_line
[ ! -e "$TMP/mismatch/issuing-ca.pem" ] || fail "a refused import wrote files"
# An issuing certificate not signed by this root.
run 1 "$CLI" ca import --ca-dir "$TMP/mismatch" --root-cert "$TMP/rsa/root-ca.pem" \
    --issuing-cert "$CA/issuing-ca.pem" --issuing-key "$CA/issuing-ca.key"
run 2 "$CLI" ca import --ca-dir "$TMP/mismatch" --root-cert "$CA/root-ca.pem"
err_has "missing --issuing-cert"

echo "-- ca export-keylime: one PEM certificate per file"
run 0 "$CLI" ca export-keylime --state-dir "$STATE" "$TMP/keylime"
out_has "tpm_cert_store"
for f in vtpmca-issuing-ca.pem vtpmca-root-ca.pem; do
    [ -f "$TMP/keylime/$f" ] || fail "$f missing"
    [ "$(pem_count "$TMP/keylime/$f")" = 1 ] || fail "$f holds more than one certificate"
done
cmp <(der_of "$TMP/keylime/vtpmca-issuing-ca.pem") <(der_of "$CA/issuing-ca.pem") || fail "exported issuing CA"
cmp <(der_of "$TMP/keylime/vtpmca-root-ca.pem") <(der_of "$CA/root-ca.pem") || fail "exported root CA"
[ "$(ls "$TMP/keylime" | wc -l)" = 2 ] || fail "export wrote other files"

echo "-- issue certificates into the database"
EK=$("$ISSUE" --ca-dir "$CA" --db "$DB" --instance vm-1 --kind ek --key p256)
EK_RSA=$("$ISSUE" --ca-dir "$CA" --db "$DB" --instance vm-1 --kind ek --key rsa2048)
IAK=$("$ISSUE" --ca-dir "$CA" --db "$DB" --instance vm-2 --kind iak)
EK_C509=$("$ISSUE" --ca-dir "$CA" --db "$DB" --instance vm-2 --kind ek --key p384 --format c509)
EK_NATIVE=$("$ISSUE" --ca-dir "$CA" --db "$DB" --instance vm-3 --format c509-native)

echo "-- cert list"
run 0 "$CLI" cert list --db "$DB"
[ "$(grep -c '^[0-9a-f]\{32\} ' "$OUT")" = 5 ] || fail "cert list does not show 5 certificates"
out_has "^$IAK +iak +x509 +issued +none +vm-2$"
out_has "^$EK_NATIVE +ek +c509 +issued"
run 0 "$CLI" cert list --db "$DB" --instance vm-2 --json
json_is "len(d)" 2
json_is "sorted(c['serial'] for c in d) == sorted(['$IAK', '$EK_C509'])" True
json_is "[c['status'] for c in d]" "['issued', 'issued']"
run 0 "$CLI" cert list --db "$DB" --instance nobody --json
json_is "d" "[]"
run 2 "$CLI" cert list --db "$DB" --instance "bad id"
run 2 "$CLI" cert list --db "$TMP/missing.db"
[ ! -e "$TMP/missing.db" ] || fail "cert list created a database"

echo "-- cert show: text, JSON with the instance identity, PEM, DER"
run 0 "$CLI" cert show "$EK" --db "$DB"
out_has "^kind: +ek" && out_has "^status: +issued" && out_has "subject: +CN=vm-1"
out_has "^  measurement: +(a1){48}$"
run 0 "$CLI" cert show "$EK" --db "$DB" --json
json_is "d['identity']['fleet']" "test-fleet"
json_is "d['identity']['instance_id']" "vm-1"
json_is "d['identity']['policy_version']" 1
json_is "d['certificate']['public_key']" "EC P-256"
json_is "d['c509_type']" "None"
run 0 "$CLI" cert show "$EK" --db "$DB" --pem
cp "$OUT" "$TMP/ek.pem"
openssl verify -CAfile "$CA/root-ca.pem" -untrusted "$CA/issuing-ca.pem" "$TMP/ek.pem" >/dev/null ||
    fail "the EK certificate does not verify"
openssl verify -x509_strict -CAfile "$TMP/keylime/vtpmca-root-ca.pem" \
    -untrusted "$TMP/keylime/vtpmca-issuing-ca.pem" "$TMP/ek.pem" >/dev/null || fail "strict verify"
# Serials as openssl prints them are accepted too.
COLONS=$(openssl x509 -in "$TMP/ek.pem" -noout -serial | sed 's/serial=//; s/../&:/g; s/:$//')
run 0 "$CLI" cert show "$COLONS" --db "$DB" --der-out "$TMP/ek.der"
cmp "$TMP/ek.der" <(der_of "$TMP/ek.pem") || fail "--der-out differs from --pem"
run 0 "$CLI" cert show "$EK_C509" --db "$DB" --json
json_is "d['format']" "c509"
json_is "d['c509_type']" 3
run 0 "$CLI" cert show "$EK_NATIVE" --db "$DB" --json
json_is "d['c509_type']" 2
json_is "d['certificate']['subject']" "CN=vm-3"
run 2 "$CLI" cert show "$EK_NATIVE" --db "$DB" --pem
err_has "no X.509 DER form" && err_one_line
run 1 "$CLI" cert show 4aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa --db "$DB"
err_has "no certificate" && err_one_line
run 2 "$CLI" cert show xyz --db "$DB"
run 2 "$CLI" cert show "$EK" --db "$DB" --pem --json

echo "-- cert revoke"
run 0 "$CLI" cert revoke "$EK" --db "$DB" --reason keyCompromise
out_has "^revoked ek certificate $EK of instance vm-1 \(keyCompromise\)"
run 0 "$CLI" cert revoke "$EK_C509" --db "$DB" --json
json_is "d['status']" "revoked"
json_is "d['reason']" "unspecified"
run 1 "$CLI" cert revoke "$EK" --db "$DB" --reason superseded
err_has "revoked already" && err_one_line
run 2 "$CLI" cert revoke "$IAK" --db "$DB" --reason certificateHold
err_has "--reason"
run 1 "$CLI" cert revoke 4aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa --db "$DB"
run 0 "$CLI" cert show "$EK" --db "$DB" --json
json_is "d['status']" "revoked"
json_is "d['reason']" "keyCompromise"
run 0 "$CLI" cert show "$IAK" --db "$DB" --json
json_is "d['status']" "issued"
# Each revocation is in the instance's audit log, once (the refused ones are not).
run 0 "$CLI" instance history vm-1 --db "$DB" --json
json_is "[e['action'] for e in d].count('cert.revoke')" 1
json_is "[e for e in d if e['action'] == 'cert.revoke'][0]['detail']" \
    "ek certificate $EK revoked: keyCompromise"

echo "-- crl show: the revoked serials, signed by the issuing CA"
run 0 "$CLI" crl show --db "$DB" --state-dir "$STATE" --der-out "$TMP/crl.der" --json
json_is "sorted((r['serial'], r['reason']) for r in d['revoked'])" \
    "$(python3 -c "print(sorted([('$EK', 'keyCompromise'), ('$EK_C509', 'unspecified')]))")"
FIRST_NUMBER=$(json "d['crl_number']")
openssl crl -inform DER -in "$TMP/crl.der" -CAfile "$CA/issuing-ca.pem" -noout 2>&1 | grep -q "verify OK" ||
    fail "the CRL does not verify with the issuing CA"
openssl crl -inform DER -in "$TMP/crl.der" -noout -text | grep -qi "$EK" || fail "openssl does not see $EK in the CRL"
openssl crl -inform DER -in "$TMP/crl.der" -noout -text | grep -q "Key Compromise" || fail "reason code"
openssl verify -crl_check -CRLfile <(openssl crl -inform DER -in "$TMP/crl.der") \
    -CAfile "$CA/root-ca.pem" -untrusted "$CA/issuing-ca.pem" "$TMP/ek.pem" >"$OUT" 2>&1 &&
    fail "openssl verify -crl_check accepts the revoked EK certificate"
grep -q "certificate revoked" "$OUT" || fail "openssl does not say the certificate is revoked"
run 0 "$CLI" crl show --db "$DB" --ca-dir "$CA"
out_has "^CRL number $((FIRST_NUMBER + 1)), issued by CN=vtpmca EK Issuing CA"
out_has "^revoked certificates: 2$"
run 2 "$CLI" crl show --db "$DB" --ca-dir "$TMP/nothing-here"
err_has "no usable CA"
run 2 "$CLI" crl show --ca-dir "$CA"
err_has "missing --db"

echo "-- c509: encode, decode (identical DER), verify"
run 0 "$CLI" c509 encode --in "$TMP/ek.pem" --out "$TMP/ek.cbor"
out_has "C509 type 3"
run 0 "$CLI" c509 encode --in "$TMP/ek.der" --out "$TMP/ek2.cbor" --json
cmp "$TMP/ek.cbor" "$TMP/ek2.cbor" || fail "PEM and DER input encode differently"
json_is "d['x509_bytes']" "$(stat -c %s "$TMP/ek.der")"
run 0 "$CLI" c509 decode --in "$TMP/ek.cbor" --der-out "$TMP/rebuilt.der"
out_has "^type: +3 \(re-encoded X.509\)" && out_has "^subject: +CN=vm-1"
cmp "$TMP/rebuilt.der" "$TMP/ek.der" || fail "the rebuilt DER differs from the certificate"
openssl verify -CAfile "$CA/root-ca.pem" -untrusted "$CA/issuing-ca.pem" \
    <(openssl x509 -inform DER -in "$TMP/rebuilt.der") >/dev/null || fail "rebuilt DER does not verify"
run 0 "$CLI" c509 decode --in "$TMP/ek.cbor" --json
json_is "d['type']" 3
json_is "d['serial']" "$EK"
json_is "d['public_key']" "EC P-256"
run 0 "$CLI" c509 verify --in "$TMP/ek.cbor" --issuer "$CA/issuing-ca.pem"
out_has "signature valid"
run 0 "$CLI" c509 verify --in "$TMP/ek.cbor" --issuer "$TMP/keylime/vtpmca-issuing-ca.pem" --json
json_is "d['verified']" True
run 1 "$CLI" c509 verify --in "$TMP/ek.cbor" --issuer "$CA/root-ca.pem"
err_has "does not verify"
run 1 "$CLI" c509 verify --in "$TMP/ek.cbor" --issuer "$TMP/rsa/issuing-ca.pem" --json
json_is "d['verified']" False
# The RSA-2048 EK and the IAK round-trip too.
for serial in "$EK_RSA" "$IAK"; do
    run 0 "$CLI" cert show "$serial" --db "$DB" --der-out "$TMP/$serial.der"
    run 0 "$CLI" c509 encode --in "$TMP/$serial.der" --out "$TMP/$serial.cbor"
    run 0 "$CLI" c509 decode --in "$TMP/$serial.cbor" --der-out "$TMP/$serial.back"
    cmp "$TMP/$serial.der" "$TMP/$serial.back" || fail "$serial does not round-trip"
    run 0 "$CLI" c509 verify --in "$TMP/$serial.cbor" --issuer "$CA/issuing-ca.pem"
done

echo "-- c509: what is refused"
head -c 100 "$TMP/ek.cbor" >"$TMP/cut.cbor"
run 2 "$CLI" c509 decode --in "$TMP/cut.cbor"
err_one_line
cp "$TMP/ek.cbor" "$TMP/flipped.cbor"
# Flip one byte near the end (inside the signature): decodes, does not verify.
python3 - "$TMP/flipped.cbor" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[-5] ^= 0x01
open(p, 'wb').write(bytes(b))
EOF
run 0 "$CLI" c509 decode --in "$TMP/flipped.cbor"
run 1 "$CLI" c509 verify --in "$TMP/flipped.cbor" --issuer "$CA/issuing-ca.pem"
run 2 "$CLI" c509 encode --in "$CA/root-ca.key" --out "$TMP/nope.cbor"
err_has "not a CERTIFICATE"
[ ! -e "$TMP/nope.cbor" ] || fail "a refused encode wrote its output"
run 2 "$CLI" c509 encode --in "$TMP/ek.pem"
err_has "missing --out"
run 2 "$CLI" c509 decode --in "$TMP/does-not-exist"
run 2 "$CLI" c509 verify --in "$TMP/ek.cbor" --issuer "$TMP/ek.cbor"

echo "PASS"
