#!/usr/bin/env bash
# Test stand-in for the bashio functions the add-on's scripts call, with bashio's semantics:
# options from ${BASHIO_TEST_OPTIONS} (the sandbox's options.json), Supervisor API calls to
# ${SUPERVISOR_API} with ${SUPERVISOR_TOKEN}, secrets kept off command lines.

bashio::log() {
    printf '[%s] %s: %s\n' "$(date +%T)" "${1}" "${2}"
}
bashio::log.info() { bashio::log INFO "${1}"; }
bashio::log.warning() { bashio::log WARNING "${1}"; }
bashio::log.error() { bashio::log ERROR "${1}"; }

bashio::exit.nok() {
    bashio::log FATAL "${1:-}"
    exit 1
}

bashio::fs.file_exists() {
    [[ -f "${1}" ]]
}

bashio::config() {
    local key=${1}
    local result
    result=$(jq -r "
        if (.${key} == null) then null
        elif (.${key} | type == \"array\") then .${key}[]
        elif (.${key} | type == \"object\") then .${key} | tojson
        else .${key} end" "${BASHIO_TEST_OPTIONS}")
    if [[ "${result}" == "null" ]]; then
        echo "${2:-null}"
    else
        printf '%s' "${result}"
    fi
}

bashio::config.true() {
    [[ "$(bashio::config "${1}")" == "true" ]]
}

# key value ... -> a JSON object; a value starting with ^ is raw JSON.
bashio::var.json() {
    local json='' separator=''
    while (($# >= 2)); do
        if [[ "${2:0:1}" == "^" ]]; then
            json+="${separator}$(echo -n "${1}" | jq -Rs .):${2:1}"
        else
            json+="${separator}$(echo -n "${1}" | jq -Rs .):$(echo -n "${2}" | jq -Rs .)"
        fi
        separator=','
        shift 2
    done
    echo "{${json}}"
}

# METHOD RESOURCE [BODY [FILTER]]: the response's .data (through FILTER).
bashio::api.supervisor() {
    local response
    response=$(printf '%s' "${3:-}" | curl -fsS -X "${1}" \
        -H @<(printf 'Authorization: Bearer %s\n' "${SUPERVISOR_TOKEN}") \
        -H 'Content-Type: application/json' --data-binary @- "${SUPERVISOR_API}${2}") || return 1
    jq -r ".data${4:-}" <<< "${response}"
}

bashio::discovery() {
    bashio::api.supervisor POST /discovery "$(bashio::var.json service "${1}" config "^${2}")" .uuid
}
