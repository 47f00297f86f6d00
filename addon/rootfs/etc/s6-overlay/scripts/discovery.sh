#!/command/with-contenv bashio
# shellcheck shell=bash
# Announce the gateway (host, port, token) to Home Assistant and provide the mqtt service.
set -e
readonly TOKEN_FILE=/data/gateway/api_token

for _ in $(seq 1 60); do
    if bashio::fs.file_exists "${TOKEN_FILE}" \
        && curl -fsS "http://127.0.0.1:8099/health" > /dev/null; then
        break
    fi
    sleep 1
done
bashio::fs.file_exists "${TOKEN_FILE}" || bashio::exit.nok "The gateway did not start"

config=$(bashio::var.json \
    host "$(hostname)" \
    port "^8099" \
    token "$(cat "${TOKEN_FILE}")")
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
    username "edgeiot-gateway" \
    password "$(cat /data/mosquitto/gateway-password)")
if bashio::api.supervisor POST "/services/mqtt" "${mqtt}" > /dev/null; then
    bashio::log.info "Provided the mqtt service"
else
    bashio::log.warning "Could not provide the mqtt service"
fi
