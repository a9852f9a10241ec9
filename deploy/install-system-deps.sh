#!/bin/bash
# Installs the Debian packages gitrack's tests, benchmarks and demo use.
# Idempotent, needs root. Keeps apt from starting the reference servers'
# system services (dnsmasq, kea, tftpd-hpa, nginx): tests start their own
# copies inside network namespaces.
#
#   deploy/install-system-deps.sh            test + demo set
#   deploy/install-system-deps.sh --bench    adds tftpd-hpa, nginx (references), time (peak RSS)
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
    echo "install-system-deps: not root; skipping Debian packages" >&2
    exit 0
fi
PKGS="git iproute2 iputils-ping curl qemu-system-x86 ipxe-qemu ipxe busybox-static dnsmasq
kea-dhcp4-server kea-admin isc-dhcp-client udhcpc tftp-hpa atftp radvd
openssl cpio xz-utils zstd debian-installer-12-netboot-amd64"
[ "${1:-}" != --bench ] || PKGS="$PKGS tftpd-hpa nginx time"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        added=1
    fi
    rc=0
    apt-get install -y -qq --no-install-recommends $missing || rc=$?
    [ "$added" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || exit "$rc"
fi
echo "install-system-deps: ok"
