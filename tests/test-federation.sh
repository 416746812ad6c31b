#!/usr/bin/env bash
# Federated learning (schemas/federation.md, device-protocol.md §5.8):
# three peripherals on 127.0.0.1 exchange pattern summaries over mutual
# TLS.  A pattern taught to one becomes predictive on the others; a tenant
# with share: false never leaves its host; a peer whose certificate comes
# from another CA is refused, and refuses us; a peer that goes away and
# comes back catches up; garbage, a forged and an oversized summary are
# rejected, counted, and the peripheral serves on.
. "${top_builddir:-..}/tests/functions.sh" || exit 99
requires certtool --version
requires gnutls-cli --version
requires python3 --version

T=$tmpdir
mkdir -p "$T/images" "$T/disks" "$T/tls"
for n in a b x y; do
    truncate -s 4M "$T/$n.raw"
    head -c 256K /dev/urandom | dd of="$T/$n.raw" conv=notrunc status=none
    ppf-image pack "$T/$n.raw" "$T/images/$n.ppfi" >/dev/null || fail "pack $n"
done

# --- certificates: a CA, a certificate per host, and a foreign CA ---------
cd "$T/tls" || fail "cd"
mkcert() {  # mkcert NAME CA: NAME.key, NAME.pem signed by CA (IP 127.0.0.1)
    certtool --generate-privkey --key-type ecdsa --outfile "$1.key" 2>/dev/null ||
        fail "certtool privkey $1"
    chmod 600 "$1.key"
    printf 'cn = "%s"\nip_address = "127.0.0.1"\ndns_name = "localhost"\ntls_www_server\ntls_www_client\nsigning_key\nencryption_key\nexpiration_days = 2\n' \
        "$1" >"$1.tmpl"
    certtool --generate-certificate --load-privkey "$1.key" --load-ca-certificate "$2.pem" \
        --load-ca-privkey "$2.key" --template "$1.tmpl" --outfile "$1.pem" 2>/dev/null ||
        fail "certtool certificate $1"
}
for ca in ca otherca; do
    certtool --generate-privkey --key-type ecdsa --outfile "$ca.key" 2>/dev/null || fail "ca key"
    printf 'cn = "ppf test %s"\nca\ncert_signing_key\nexpiration_days = 2\n' "$ca" >"$ca.tmpl"
    certtool --generate-self-signed --load-privkey "$ca.key" --template "$ca.tmpl" \
        --outfile "$ca.pem" 2>/dev/null || fail "certtool self-signed $ca"
done
for h in host1 host2 host3 garbler; do mkcert $h ca; done
mkcert rogue otherca
cd - >/dev/null || fail "cd -"

# --- four peripherals: three federated, and one from another CA -----------
base=$((20000 + $$ % 20000))
port() { echo $((base + $1)); }
policy() {  # policy N CA PEER...
    local n=$1 ca=$2; shift 2
    local peers="" p
    for p in "$@"; do peers="$peers${peers:+, }\"127.0.0.1:$(port "$p")\""; done
    cat >"$T/policy$n.yaml" <<EOT
buffer:
  path: $T/buffer$n
  capacity: 1GiB
stores:
  - {name: local, url: "file://$T/images"}
deploy:
  dirs: [$T/disks]
learning:
  algorithm: markov
prefetch:
  bandwidth: 64MiB/s
tenants:
  secret: {share: false}
federation:
  enabled: true
  listen: "127.0.0.1:$(port "$n")"
  peers: [$peers]
  ca_file: $T/tls/$ca.pem
  cert_file: $T/tls/$(if [ "$n" = 4 ]; then echo rogue; else echo "host$n"; fi).pem
  key_file: $T/tls/$(if [ "$n" = 4 ]; then echo rogue; else echo "host$n"; fi).key
  interval: 1s
EOT
}
policy 1 ca 2 3
policy 2 ca 1 3
policy 3 ca 1 2
policy 4 otherca 1
dev() { echo "emu:$T/ppf$1"; }
for n in 1 2 3 4; do
    start_peripheral "ppf$n"
    ppfctl -d "$(dev $n)" policy apply "$T/policy$n.yaml" >/dev/null || fail "policy apply $n"
done

fed() {     # fed N: ppfctl --json federation status of peripheral N
    ppfctl -d "$(dev "$1")" --json federation status
}
# fedq N PYTHON-EXPR: evaluates EXPR with s = the status, in = {DN: peer}
# of the peers that send to it, out = {addr: peer} of those it sends to
fedq() {
    fed "$1" | python3 -c '
import json, sys
s = json.load(sys.stdin)
inp = {p["peer"]: p for p in s["peers"] if p["direction"] == "in"}
out = {p["peer"]: p for p in s["peers"] if p["direction"] == "out"}
def peer_in(cn):
    return next((p for d, p in inp.items() if "CN=" + cn in d), {})
print(eval(sys.argv[1]))' "$2"
}
wait_for() {  # wait_for SECONDS N EXPR: until fedq N EXPR prints True
    for _ in $(seq $(($1 * 5))); do
        [ "$(fedq "$2" "$3" 2>/dev/null)" = True ] && return 0
        sleep 0.2
    done
    return 1
}
state_of() {  # state_of N IMAGE: its state in peripheral N's buffer
    local s
    s=$(ppfctl -d "$(dev "$1")" --json buffer | tr '{' '\n' | grep "\"image\": *\"$2\"" |
        sed -n 's/.*"state": *"\([a-z-]*\)".*/\1/p')
    echo "${s:-absent}"
}
wait_state() {  # wait_state N IMAGE STATE...: up to 10 s
    for _ in $(seq 100); do
        local s; s=$(state_of "$1" "$2")
        for want in "${@:3}"; do [ "$s" = "$want" ] && return 0; done
        sleep 0.1
    done
    return 1
}

fedq 1 's["state"]' | grep -qx running || { fed 1; fail "federation not running on 1"; }

# --- teach peripheral 1 only: a then b (public), x then y (private tenant)
for _ in 1 2 3 4 5; do
    ppfctl -d "$(dev 1)" event deploy a >/dev/null || fail "event deploy a"
    ppfctl -d "$(dev 1)" event deploy b >/dev/null || fail "event deploy b"
    ppfctl -d "$(dev 1)" event deploy x --tenant secret >/dev/null || fail "event deploy x"
    ppfctl -d "$(dev 1)" event deploy y --tenant secret >/dev/null || fail "event deploy y"
done
# 2 and 3 get 1's summary: a and b, never the secret tenant's x and y
for n in 2 3; do
    wait_for 15 $n 'peer_in("host1").get("merged_images", 0) == 2' ||
        { fed $n; cat "$T/ppf$n.log" >&2; fail "peripheral $n did not merge host1's 2 images"; }
done
fedq 1 's["exported_images"]' | grep -qx 2 || { fed 1; fail "1 exports more than a and b"; }
for n in 1 2 3; do
    grep -q '"x"\|secret' "$T/ppf$n.log" && grep -i federation "$T/ppf$n.log" | grep -q secret &&
        fail "the private tenant appears in federation messages on $n"
done
# a pattern taught to 1 is predictive on 2 and 3: a makes b ready
for n in 2 3; do
    [ "$(state_of $n b)" = absent ] || fail "b is on $n before anyone asked"
    ppfctl -d "$(dev $n)" event deploy a >/dev/null || fail "event deploy a on $n"
    wait_state $n b ready in-flight ||
        { cat "$T/ppf$n.log" >&2; fail "the federated pattern a -> b did not prefetch b on $n"; }
done
grep -q "predict: prefetching b for default" "$T/ppf2.log" || fail "2 does not say why b came"
# the private pattern x -> y did not travel
ppfctl -d "$(dev 2)" event deploy x --tenant secret >/dev/null || fail "event deploy x on 2"
sleep 1.5
[ "$(state_of 2 y)" = absent ] || fail "y was prefetched on 2: the private tenant's pattern leaked"

# --- a peer from another CA is refused both ways; nothing merged ---------
# 4 dials 1: 4 does not trust 1's certificate and gives up in the handshake
wait_for 10 4 'out["127.0.0.1:'"$(port 1)"'"].get("failures", 0) >= 1' ||
    { fed 4; fail "the foreign-CA peer did not record a failure"; }
fedq 4 'out["127.0.0.1:'"$(port 1)"'"]["error"]' | grep -q "not trusted" ||
    { fed 4; fail "4's error does not say why"; }
wait_for 10 1 's["refused"] >= 1' || { fed 1; fail "1 did not count the refused handshake"; }
# a client that trusts 1 but shows a certificate from another CA.  Its refusal is
# looked for in 1's log: refused_error keeps only the last refusal, and 4 keeps
# dialling 1 (and giving up in the handshake) meanwhile
untrusted() { grep -c "refused a connection from .*certificate not trusted" "$T/ppf1.log"; }
before=$(untrusted)
timeout 10 gnutls-cli --port "$(port 1)" --x509cafile "$T/tls/ca.pem" \
    --x509certfile "$T/tls/rogue.pem" --x509keyfile "$T/tls/rogue.key" \
    127.0.0.1 </dev/null >/dev/null 2>&1
for _ in $(seq 100); do [ "$(untrusted)" -gt "$before" ] && break; sleep 0.1; done
[ "$(untrusted)" -gt "$before" ] || { fed 1; fail "1 did not refuse the foreign certificate"; }
fedq 1 'peer_in("rogue") == {}' | grep -qx True || fail "1 accepted something from the rogue peer"

# --- text output ----------------------------------------------------------
ppfctl -d "$(dev 2)" federation status >"$T/status.txt" || fail "federation status"
grep -q "^federation: running, listening on 127.0.0.1:$(port 2)" "$T/status.txt" ||
    fail "status text: $(cat "$T/status.txt")"
grep -q "^from .*CN=host1.*merged 2 images" "$T/status.txt" || fail "status text: $(cat "$T/status.txt")"
ppfctl -d "$(dev 2)" federation bogus 2>/dev/null; [ $? = 2 ] || fail "bad subcommand not a usage error"

# --- garbage, forged and oversized summaries from a trusted peer ----------
send() {    # send FILE: as the peer "garbler" (a good certificate)
    timeout 10 gnutls-cli --port "$(port 1)" --x509cafile "$T/tls/ca.pem" \
        --x509certfile "$T/tls/garbler.pem" --x509keyfile "$T/tls/garbler.key" \
        127.0.0.1 <"$1" >/dev/null 2>&1 || :
}
head -c 4096 /dev/urandom >"$T/garbage"
printf 'PPFF\001\000\000\000\377\377\377\177' >"$T/oversized"
{ printf 'PPFF\001\000\000\000\040\000\000\000'; printf 'PPFS\001\000\000\000'; head -c 24 /dev/urandom; } >"$T/forged"
for f in garbage oversized forged; do send "$T/$f"; done
wait_for 10 1 'peer_in("garbler").get("rejected", 0) == 3 and peer_in("garbler").get("accepted", 0) == 0' ||
    { fed 1; fail "the garbage was not rejected and counted"; }
grep -q "rejected a summary from .*garbler.*oversized" "$T/ppf1.log" || fail "oversize not logged"
ppfctl -d "$(dev 1)" status >/dev/null || fail "1 does not answer after garbage"
ppfctl -d "$(dev 1)" event deploy a >/dev/null || fail "1 does not learn after garbage"
wait_for 10 2 'peer_in("host1")["last_exchange"] > '"$(($(date +%s) + 1))" ||
    fail "1 stopped exchanging after garbage"

# --- a peer that goes away and comes back ---------------------------------
kill_pidfile "$T/ppf3.pid"
wait_for 10 1 'out["127.0.0.1:'"$(port 3)"'"].get("failures", 0) >= 1' ||
    { fed 1; fail "1 did not notice that 3 went away"; }
ppfctl -d "$(dev 1)" federation status | grep -q "last error" || fail "no error shown for 3"
start_peripheral ppf3  # its policy was kept; peers' evidence lives in memory only
wait_for 20 3 'peer_in("host1").get("merged_images", 0) == 2' ||
    { fed 1; fed 3; fail "3 did not catch up after coming back"; }
# (b is in its buffer from before: the prediction shows in its table)
ppfctl -d "$(dev 3)" event deploy a >/dev/null || fail "event deploy a on 3"
ppfctl -d "$(dev 3)" --json table | python3 -c '
import json, sys
rows = {r["key"]: r for r in json.load(sys.stdin)["rows"]}
assert rows["after default/a"]["images"][0]["image"] == "b", rows' ||
    fail "3 does not predict b after a once it came back"
echo "ok"
