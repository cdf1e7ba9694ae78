#!/usr/bin/env bash
# Makes a test PKI in DIR, new keys every time (a test run's certificates are its own):
#   ca.pem/ca.key              the CA the tests trust
#   other-ca.pem/other-ca.key  a CA nobody trusts (the "wrong CA" cases)
#   server.pem/server.key      a server on 127.0.0.1, also named pg.test and host.test
#                              (not "localhost": the wrong-host-name cases connect by that)
#   server2.pem/server2.key    the same names, a new key and serial (a rotation)
#   expired.pem/expired.key    the same names, valid only in 2020
#   client-NAME.pem/.key       a client certificate with CN=NAME and SAN DNS:NAME, per NAME
#                              given after DIR (default: runbook)
# Usage: scripts/test-certs.sh DIR [CLIENT_NAME ...]
set -euo pipefail
dir=${1:?usage: scripts/test-certs.sh DIR [CLIENT_NAME ...]}
shift
clients=("${@:-runbook}")
mkdir -p "$dir"
cd "$dir"
rm -rf db && mkdir db && : > db/index.txt && echo 01 > db/serial
cat > ca.cnf <<'CNF'
[ca]
default_ca = test
[test]
dir = .
database = db/index.txt
new_certs_dir = db
serial = db/serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
CNF

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 30 -subj "/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
# leaf NAME CN SAN EKU [start end]
leaf() {
    key "$1.key"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2"
    printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$3" "$4" > "$1.ext"
    local dates=(-days 30)
    [ $# -ge 6 ] && dates=(-startdate "$5" -enddate "$6")
    openssl ca -batch -notext -config ca.cnf -cert ca.pem -keyfile ca.key -in "$1.csr" \
        -out "$1.pem" -extfile "$1.ext" "${dates[@]}" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

ca ca "runbook test CA"
ca other-ca "an untrusted CA"
server_names="IP:127.0.0.1,DNS:pg.test,DNS:host.test"
leaf server pg.test "$server_names" serverAuth
# The same names under a new key: a certificate rotated on disk.
leaf server2 pg.test "$server_names" serverAuth
leaf expired pg.test "$server_names" serverAuth 20200101000000Z 20200102000000Z
for name in "${clients[@]}"; do
    leaf "client-$name" "$name" "DNS:$name" clientAuth
done
rm -rf db ca.cnf
