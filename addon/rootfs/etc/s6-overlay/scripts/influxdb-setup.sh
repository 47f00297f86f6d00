#!/command/with-contenv bashio
# shellcheck shell=bash
# Accounts of the built-in InfluxDB (authentication on, see DOCS.md), set at every start:
# - admin and edgeiot-gateway (write access to the edgeiot database): passwords generated once
#   and kept in /data/influxdb (0600);
# - influxdb_logins from the options: read access to the edgeiot database (Grafana); other
#   accounts are dropped;
# - the edgeiot database and its retention (influxdb_retention).
# Statements and credentials reach curl on stdin, never on a command line, and are never logged.
set -e
readonly DATA=/data/influxdb
readonly URL=http://127.0.0.1:8086
readonly DATABASE=edgeiot
readonly GATEWAY_USER=edgeiot-gateway

generate_password() {
    if ! bashio::fs.file_exists "${1}"; then
        # 64 hex digits; no `tr < /dev/urandom | head`, which fails under pipefail (SIGPIPE).
        (umask 077 && head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n' > "${1}.new")
        mv "${1}.new" "${1}"
    fi
}

# query STATEMENTS [USER PASSWORD-FILE]: run InfluxQL (as that user, else unauthenticated);
# fails, logging InfluxDB's first error (errors name no secret), when a statement fails.
query() {
    local response error
    if [[ -n "${2:-}" ]]; then
        response=$(printf '%s' "${1}" | curl -sS -K <(printf 'user = "%s:%s"\n' "${2}" "$(< "${3}")") \
            --data-urlencode q@- "${URL}/query")
    else
        response=$(printf '%s' "${1}" | curl -sS --data-urlencode q@- "${URL}/query")
    fi
    error=$(jq -r '[.error // empty, (.results[]?.error // empty)] | first // empty' <<< "${response}")
    if [[ -n "${error}" ]]; then
        bashio::log.error "InfluxDB: ${error}"
        return 1
    fi
}

# An InfluxQL string literal.
literal() {
    local value=${1//\\/\\\\}
    printf "'%s'" "${value//\'/\\\'}"
}

# admin STATEMENTS: run them as the admin.
admin() {
    query "${1}" admin "${DATA}/admin-password"
}

for _ in $(seq 1 120); do
    curl -fsS --max-time 5 "${URL}/ping" > /dev/null 2>&1 && break
    sleep 0.5
done
curl -fsS --max-time 5 "${URL}/ping" > /dev/null || bashio::exit.nok "InfluxDB did not start within 60 s"

if ! bashio::fs.file_exists "${DATA}/admin-password"; then
    # First start: InfluxDB accepts this one statement without credentials while it has no users.
    generate_password "${DATA}/admin-password.first"
    query "CREATE USER admin WITH PASSWORD $(literal "$(< "${DATA}/admin-password.first")") WITH ALL PRIVILEGES"
    mv "${DATA}/admin-password.first" "${DATA}/admin-password"
    bashio::log.info "Created the InfluxDB admin account"
fi

retention=$(bashio::config 'influxdb_retention')
admin "CREATE DATABASE \"${DATABASE}\"; ALTER RETENTION POLICY \"autogen\" ON \"${DATABASE}\" DURATION ${retention}"

existing=$(printf '%s' 'SHOW USERS' | curl -sS -K <(printf 'user = "admin:%s"\n' "$(< "${DATA}/admin-password")") \
    --data-urlencode q@- "${URL}/query" | jq -r '.results[0].series[0].values[]?[0]')
declare -A keep=([admin]=1)

# set_user NAME PASSWORD PRIVILEGE: create the account or reset its password; grant PRIVILEGE
# (READ or WRITE) on the database.
set_user() {
    local password
    password=$(literal "${2}")
    if grep -qxF "${1}" <<< "${existing}"; then
        admin "SET PASSWORD FOR \"${1}\" = ${password}"
    else
        admin "CREATE USER \"${1}\" WITH PASSWORD ${password}"
    fi
    admin "GRANT ${3} ON \"${DATABASE}\" TO \"${1}\""
    keep[${1}]=1
}

generate_password "${DATA}/gateway-password"
set_user "${GATEWAY_USER}" "$(< "${DATA}/gateway-password")" WRITE
for index in $(bashio::config 'influxdb_logins|keys'); do
    username=$(bashio::config "influxdb_logins[${index}].username")
    if [[ -n "${keep[${username}]:-}" ]]; then
        bashio::log.error "InfluxDB login '${username}' is reserved or listed twice; it is left out"
        continue
    fi
    set_user "${username}" "$(bashio::config "influxdb_logins[${index}].password")" READ
done
for user in ${existing}; do
    if [[ -z "${keep[${user}]:-}" ]]; then
        admin "DROP USER \"${user}\""
        bashio::log.info "Removed the InfluxDB login '${user}' (no longer in the options)"
    fi
done
bashio::log.info "InfluxDB accounts are set"
