#!/usr/bin/env bash
# Starts what the test suite talks to, installing it first on a fresh machine:
#   - MariaDB on 127.0.0.1:3306 with a user `azi3`/`azi3` that may create databases.
# Safe to run any number of times. Exports nothing; prints the URLs it made ready.
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

mariadb_answers() { mariadb-admin --protocol=socket -uroot ping >/dev/null 2>&1; }

start_mariadb() {
    if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
        log "installing mariadb-server"
        apt_install mariadb-server
    fi
    if ! mariadb_answers; then
        log "starting mariadbd"
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
        for _ in $(seq 1 150); do
            mariadb_answers && break
            sleep 0.2
        done
        mariadb_answers || { log "mariadbd did not answer within 30 s"; exit 1; }
    fi
    mariadb --protocol=socket -uroot <<'SQL'
CREATE USER IF NOT EXISTS 'azi3'@'127.0.0.1' IDENTIFIED BY 'azi3';
CREATE USER IF NOT EXISTS 'azi3'@'localhost' IDENTIFIED BY 'azi3';
GRANT ALL PRIVILEGES ON *.* TO 'azi3'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'azi3'@'localhost';
SQL
    log "MariaDB ready: mysql://azi3:azi3@127.0.0.1:3306"
}

start_mariadb
