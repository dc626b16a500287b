#!/usr/bin/env bash
# Installs everything Wild Backup, its demo and its tests need. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(restic rclone openssh-server openssh-client sshpass postgresql mariadb-server mariadb-client
      redis-server chromium ca-certificates openssl tar coreutils procps
      busybox) # busybox: the helper image's tools (alpine), for the tests of the scripts run there

missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Installing the server packages must not start (or restart) their system services.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.wild-backup
    if [ ! -e /usr/sbin/policy-rc.d ]; then cp /usr/sbin/policy-rc.d.wild-backup /usr/sbin/policy-rc.d; trap 'rm -f /usr/sbin/policy-rc.d' EXIT; fi
    rm -f /usr/sbin/policy-rc.d.wild-backup
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: not root; please install these Debian packages: ${missing[*]}" >&2
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
echo "setup: done"
