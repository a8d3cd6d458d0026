# shellcheck shell=bash
# Part of scripts/redis-up.sh (sourced by it, with its helpers defined): the test certificates
# and the TLS servers -- a TLS-only server, a TLS-only server requiring client certificates, and
# a TLS-only cluster of 3 masters with a replica each (`tls-cluster yes`, `tls-replication yes`).

# Writes the test certificates into directory $1: ca, server (IP:127.0.0.1), client, other-ca.
_kinde_redis_certs() {
    local d=$1
    mkdir -p "$d"
    (
        set -e
        cd "$d"
        ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
        for ca in ca other-ca; do
            openssl req -x509 "${ec[@]}" -keyout "$ca.key" -out "$ca.crt" -days 7 \
                -subj "/CN=kinde-webhooks test $ca" \
                -addext "basicConstraints=critical,CA:TRUE" \
                -addext "keyUsage=critical,keyCertSign,cRLSign"
        done
        printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=IP:127.0.0.1" >server.ext
        printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=clientAuth" >client.ext
        for leaf in server client; do
            openssl req "${ec[@]}" -keyout "$leaf.key" -out "$leaf.csr" \
                -subj "/CN=kinde-webhooks test $leaf"
            openssl x509 -req -in "$leaf.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
                -days 7 -extfile "$leaf.ext" -out "$leaf.crt"
        done
    ) >"$d/openssl.log" 2>&1
}

# The TLS servers: certificates, a TLS server, an mTLS server, a TLS cluster. Sets
# _kinde_tls_* for the exports; returns 1 (after logging) if TLS cannot be set up.
_kinde_redis_tls_up() {
    local root=$1 certs="$1/tls" tls_lines flags node i dirs=() ports=()
    if ! command -v openssl >/dev/null 2>&1; then
        _kinde_redis_log "openssl not found: no TLS servers (the TLS tests will skip)"
        return 1
    fi
    if ! _kinde_redis_certs "$certs"; then
        _kinde_redis_log "generating the test certificates failed (log: $certs/openssl.log)"
        cat "$certs/openssl.log" >&2
        return 1
    fi
    tls_lines=("port 0" "tls-port @PORT@" "tls-cert-file $certs/server.crt"
        "tls-key-file $certs/server.key" "tls-ca-cert-file $certs/ca.crt")
    flags="--tls --cacert $certs/ca.crt --cert $certs/client.crt --key $certs/client.key"
    if ! node=$(_kinde_redis_start "$root" tls "$flags" "${tls_lines[@]}" "tls-auth-clients no"); then
        _kinde_redis_log "could not start a TLS redis-server (built without TLS? see $root/tls-*/redis.log)"
        return 1
    fi
    _kinde_tls_url="rediss://127.0.0.1:${node%% *}"
    if ! node=$(_kinde_redis_start "$root" mtls "$flags" "${tls_lines[@]}" "tls-auth-clients yes"); then
        _kinde_redis_log "could not start the mutual-TLS redis-server"
        return 1
    fi
    _kinde_mtls_url="rediss://127.0.0.1:${node%% *}"
    for i in 1 2 3 4 5 6; do
        if ! node=$(_kinde_redis_start "$root" tlsnode "$flags" "${tls_lines[@]}" \
            "tls-auth-clients no" "tls-cluster yes" "tls-replication yes" "appendonly no" \
            "cluster-enabled yes" "cluster-config-file nodes.conf" "cluster-node-timeout 1000" \
            "repl-diskless-sync-delay 0"); then
            _kinde_redis_log "could not start TLS cluster node $i"
            return 1
        fi
        ports+=("${node%% *}")
        dirs+=("${node#* }")
    done
    _kinde_redis_cluster "$flags" "${dirs[@]}" "$root/tls-cluster-create.log" || return 1
    _kinde_tls_cluster_urls=$(printf 'rediss://127.0.0.1:%s,' "${ports[@]}")
    _kinde_tls_cluster_urls=${_kinde_tls_cluster_urls%,}
    _kinde_tls_certs=$certs
    return 0
}

