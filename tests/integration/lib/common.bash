# Shared helpers of the shell end-to-end tests (sourced, not a test itself: CMake registers
# only tests/integration/*.sh). The sourcing script sets OUT and ERR (files that receive a
# command's stdout and stderr) before calling any of these.

fail() {
    echo "FAIL: $*" >&2
    sed 's/^/  stdout: /' "$OUT" | head -40 >&2
    sed 's/^/  stderr: /' "$ERR" >&2
    exit 1
}

# run EXIT_CODE CMD... : runs CMD (stdout/stderr captured) and checks its exit code.
run() {
    local want=$1 got=0
    shift
    "$@" >"$OUT" 2>"$ERR" || got=$?
    [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want"
}
out_has() { grep -qE -- "$1" "$OUT" || fail "stdout lacks /$1/"; }
err_has() { grep -qE -- "$1" "$ERR" || fail "stderr lacks /$1/"; }
# Errors are one clear line on stderr.
err_one_line() { [ "$(wc -l <"$ERR")" -eq 1 ] || fail "stderr is not exactly one line"; }
# json EXPR: evaluates a Python expression over the JSON on stdout (d), printing the result.
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$OUT"; }
json_is() { [ "$(json "$1")" = "$2" ] || fail "JSON $1 is '$(json "$1")', expected '$2'"; }
