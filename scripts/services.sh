#!/usr/bin/env bash
# Starts what the test suite talks to, installing it first on a fresh machine:
#   - MariaDB on 127.0.0.1:3306 with a user `azi3`/`azi3` that may create databases.
#   - moto server (an SQS-compatible emulator, state in memory) on http://127.0.0.1:4566.
#   - promtool, to check the alert rules.
#   - chromium and chromedriver, for the browser tests.
#   - schemathesis, to fuzz the service against its OpenAPI document.
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

# Installs Python packages with pip (and pip itself when missing).
pip_install() {
    if ! python3 -m pip --version >/dev/null 2>&1; then
        log "installing python3-pip"
        apt_install python3-pip
    fi
    # Debian's Python refuses pip installs outside a venv (PEP 668) unless told otherwise;
    # pip versions without that check, or without the root warning, ignore these variables.
    PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
        python3 -m pip install --quiet "$@"
    hash -r
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
    log "MariaDB ready: mysql://azi3:***@127.0.0.1:3306 (user azi3, password in AZI3_TEST_MYSQL_URL)"
}

MOTO_URL=http://127.0.0.1:4566
MOTO_LOG=/tmp/azi3-moto.log

# Python instead of curl: pip needs Python anyway, curl may be missing on a fresh machine.
moto_answers() {
    python3 -c 'import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except Exception:
    sys.exit(1)' "$MOTO_URL/moto-api/" >/dev/null 2>&1
}

start_moto() {
    if moto_answers; then
        log "moto ready: $MOTO_URL"
        return
    fi
    if ! command -v moto_server >/dev/null 2>&1; then
        log "installing moto"
        pip_install moto flask flask-cors
    fi
    local server=(moto_server)
    command -v moto_server >/dev/null 2>&1 || server=(python3 -m moto.server)
    log "starting moto server (log: $MOTO_LOG)"
    setsid nohup "${server[@]}" -H 127.0.0.1 -p 4566 >"$MOTO_LOG" 2>&1 </dev/null &
    for _ in $(seq 1 150); do
        moto_answers && break
        sleep 0.2
    done
    if ! moto_answers; then
        log "moto server did not answer on $MOTO_URL within 30 s; last lines of $MOTO_LOG:"
        tail -n 20 "$MOTO_LOG" >&2 || true
        exit 1
    fi
    log "moto ready: $MOTO_URL"
}

# promtool checks the Prometheus alert rules in contrib/prometheus/ (Debian ships it with
# prometheus; the server itself is not started).
install_promtool() {
    if ! command -v promtool >/dev/null 2>&1; then
        log "installing prometheus (for promtool)"
        apt_install prometheus
    fi
}

# Headless Chromium and its WebDriver, for the browser tests (tests/it/replay/browser.rs,
# tests/it/dashboard/browser.rs).
install_chromium() {
    if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
        log "installing chromium and chromium-driver (for the browser tests)"
        apt_install chromium chromium-driver
    fi
}

# schemathesis fuzzes the running service against its OpenAPI document
# (tests/it/dashboard/http.rs).
install_schemathesis() {
    if ! command -v schemathesis >/dev/null 2>&1; then
        log "installing schemathesis"
        pip_install schemathesis
    fi
}

start_mariadb
start_moto
install_promtool
install_chromium
install_schemathesis
