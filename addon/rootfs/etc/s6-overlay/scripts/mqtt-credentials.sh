#!/command/with-contenv bashio
# shellcheck shell=bash
# Generate the gateway's broker account once and (re)write the password file from the options.
set -e
readonly DATA=/data/mosquitto
mkdir -p "${DATA}"
if ! bashio::fs.file_exists "${DATA}/gateway-password"; then
    (umask 077 && tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 40 > "${DATA}/gateway-password")
fi
(umask 077 && : > "${DATA}/passwd.new")
mosquitto_passwd -b "${DATA}/passwd.new" edgeiot-gateway "$(cat "${DATA}/gateway-password")"
for index in $(bashio::config 'mqtt_logins|keys'); do
    username=$(bashio::config "mqtt_logins[${index}].username")
    password=$(bashio::config "mqtt_logins[${index}].password")
    mosquitto_passwd -b "${DATA}/passwd.new" "${username}" "${password}"
done
mv "${DATA}/passwd.new" "${DATA}/passwd"
