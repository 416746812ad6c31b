#!/usr/bin/env bash
# ppf-image over https://: a test CA and server certificate made with
# certtool, a small Python TLS server with range requests on 127.0.0.1
# (killed by PID at exit), unpack bit-exact with the right CA, refused with
# a wrong CA, without a CA, with a wrong pinned key; a missing image; and a
# server that cuts every third response short (resumed retries).
. "${top_builddir:-..}/tests/functions.sh" || exit 99

requires ppf-image --help
requires certtool --version
requires python3 -c 'import ssl, http.server'
d=$tmpdir
server="$top_srcdir/tests/image-data/https-server.py"

expect_exit() {
    local want=$1 got=0; shift
    "$@" >"$d/out.log" 2>"$d/err.log" || got=$?
    [ "$got" -eq "$want" ] || { cat "$d/err.log" >&2; fail "'$*' exited $got, expected $want"; }
}

# --- certificates ---------------------------------------------------------
mkcert() {   # mkcert NAME TEMPLATE [CA]
    certtool --generate-privkey --key-type=ecdsa --outfile "$d/$1.key" 2>/dev/null ||
        certtool --generate-privkey --ecc --outfile "$d/$1.key" 2>/dev/null || fail "certtool privkey"
    if [ $# -eq 2 ]; then
        certtool --generate-self-signed --load-privkey "$d/$1.key" --template "$2" \
            --outfile "$d/$1.pem" 2>/dev/null || fail "certtool self-signed"
    else
        certtool --generate-certificate --load-privkey "$d/$1.key" --load-ca-certificate "$d/$3.pem" \
            --load-ca-privkey "$d/$3.key" --template "$2" --outfile "$d/$1.pem" 2>/dev/null ||
            fail "certtool certificate"
    fi
}
printf 'cn = "ppf test CA"\nca\ncert_signing_key\nexpiration_days = 2\n' >"$d/ca.tmpl"
printf 'cn = "127.0.0.1"\nip_address = "127.0.0.1"\ndns_name = "localhost"\ntls_www_server\nsigning_key\nencryption_key\nexpiration_days = 2\n' >"$d/srv.tmpl"
mkcert ca "$d/ca.tmpl"
mkcert other-ca "$d/ca.tmpl"
mkcert srv "$d/srv.tmpl" ca
certtool --load-privkey "$d/srv.key" --pubkey-info --outfile "$d/srv.pub" 2>/dev/null || fail "pubkey"
certtool --load-privkey "$d/other-ca.key" --pubkey-info --outfile "$d/other.pub" 2>/dev/null || fail "pubkey"

# --- the image --------------------------------------------------------------
mkdir "$d/www"
head -c 32 /dev/urandom >"$d/key"; chmod 600 "$d/key"
truncate -s 64M "$d/disk.raw"
for off in 0 5 33 60; do
    dd if="$(command -v bash)" of="$d/disk.raw" bs=1M seek="$off" conv=notrunc status=none
done
ppf-image pack "$d/disk.raw" "$d/www/disk.ppfi" --key "$d/key" --chunk 256K || fail "pack"

start_server() {   # start_server NAME [OPTIONS...]: sets $url
    local name=$1; shift
    python3 "$server" --root "$d/www" --cert "$d/srv.pem" --key "$d/srv.key" \
        --port-file "$d/$name.port" --lifetime 240 "$@" 2>"$d/$name.log" &
    local pid=$!
    cleanup_fn "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    for _ in $(seq 200); do
        [ -s "$d/$name.port" ] && break
        kill -0 $pid 2>/dev/null || { cat "$d/$name.log" >&2; fail "server $name exited"; }
        sleep 0.05
    done
    [ -s "$d/$name.port" ] || fail "server $name did not start"
    url="https://127.0.0.1:$(cat "$d/$name.port")/disk.ppfi"
}

start_server good
ppf-image info "$url" --ca-file "$d/ca.pem" | grep -q 'size: *67108864' || fail "info over https"
ppf-image unpack "$url" "$d/out.raw" --key "$d/key" --ca-file "$d/ca.pem" --threads 2 ||
    fail "unpack over https"
cmp "$d/disk.raw" "$d/out.raw" || fail "https round trip differs"
rm -f "$d/out.raw"
ppf-image verify "$url" --key "$d/key" --ca-file "$d/ca.pem" >/dev/null || fail "verify over https"
ppf-image unpack "$url" "$d/out.raw" --key "$d/key" --ca-file "$d/ca.pem" \
    --pinned-pubkey "$d/srv.pub" || fail "unpack with the right pinned key"
rm -f "$d/out.raw"

expect_exit 4 ppf-image unpack "$url" "$d/out.raw" --key "$d/key" --ca-file "$d/other-ca.pem"
grep -qi 'certificate\|verif' "$d/err.log" || fail "wrong CA not reported as a certificate problem"
! ls "$d"/out.raw* >/dev/null 2>&1 || fail "output left after a wrong CA"
expect_exit 4 ppf-image unpack "$url" "$d/out.raw" --key "$d/key"    # system CAs only
expect_exit 4 ppf-image unpack "$url" "$d/out.raw" --key "$d/key" --ca-file "$d/ca.pem" \
    --pinned-pubkey "$d/other.pub"
expect_exit 4 ppf-image info "${url%/disk.ppfi}/missing.ppfi" --ca-file "$d/ca.pem"
grep -q '404' "$d/err.log" || fail "a missing image is not reported with its HTTP status"
expect_exit 2 ppf-image info "ftp://127.0.0.1/disk.ppfi"
! ls "$d"/out.raw* >/dev/null 2>&1 || fail "output left after failures"

start_server flaky --drop-every 3
ppf-image unpack "$url" "$d/out.raw" --key "$d/key" --ca-file "$d/ca.pem" --threads 2 ||
    fail "unpack through a server that drops connections"
cmp "$d/disk.raw" "$d/out.raw" || fail "resumed round trip differs"
echo ok
