#!/command/with-contenv bashio
# shellcheck shell=bash
# Announce the gateway (host, port, token) to Home Assistant and provide the mqtt service with
# Home Assistant's own broker account. bashio (>= 0.18) posts these secrets through a file and
# stdin, never on a command line.
set -e
readonly TOKEN_FILE=/data/gateway/api_token

# The gateway may be waiting to restart after failures (see gateway/finish): keep waiting.
waited=0
until bashio::fs.file_exists "${TOKEN_FILE}" \
    && curl -fsS --max-time 5 "http://127.0.0.1:8099/health" > /dev/null 2>&1; do
    sleep 1
    waited=$((waited + 1))
    if ((waited % 60 == 0)); then
        bashio::log.warning "Still waiting for the gateway before announcing it to Home Assistant"
    fi
done

config=$(bashio::var.json \
    host "$(hostname)" \
    port "^8099" \
    token "$(< "${TOKEN_FILE}")")
if bashio::discovery "edgeiot" "${config}" > /dev/null; then
    bashio::log.info "Announced the EdgeIoT gateway to Home Assistant"
else
    bashio::log.error "Could not announce the EdgeIoT gateway to Home Assistant"
fi

mqtt=$(bashio::var.json \
    host "$(hostname)" \
    port "^1883" \
    ssl "^false" \
    protocol "3.1.1" \
    username "homeassistant" \
    password "$(< /data/mosquitto/homeassistant-password)")
if bashio::api.supervisor POST "/services/mqtt" "${mqtt}" > /dev/null; then
    bashio::log.info "Provided the mqtt service"
else
    bashio::log.warning "Could not provide the mqtt service"
fi
