#!/usr/bin/env bash
# Install a one-node Slurm from Debian packages: munge, slurmctld, slurmd, slurm-client, and with
# --accounting also slurmdbd and MariaDB (for the `sacct` status path). Root only; no prompts.
# Idempotent: installs only what is missing, and touches apt not at all when nothing is.
set -euo pipefail
source "$(dirname "$0")/settings.sh"

packages=(munge slurmctld slurmd slurm-client)
case ${1:-} in
    --accounting) packages+=(slurmdbd mariadb-server) ;;
    "") ;;
    *) echo "usage: $0 [--accounting]" >&2; exit 2 ;;
esac

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if (( ${#missing[@]} == 0 )); then
    echo "slurm install: ${packages[*]} already installed"
    exit 0
fi
if (( EUID != 0 )); then
    echo "slurm install: ${missing[*]} missing, and installing them needs root" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_options=(-q -y -o Acquire::Retries=3 -o DPkg::Lock::Timeout=300)
apt-get "${apt_options[@]}" update
for package in "${missing[@]}"; do
    candidate=$(apt-cache policy "$package" | awk '/Candidate:/ {print $2}')
    if [[ -z $candidate || $candidate == "(none)" ]]; then
        echo "slurm install: apt has no candidate for $package (apt-cache policy $package)" >&2
        exit 1
    fi
    echo "slurm install: $package $candidate"
done

# Keep the packages' maintainer scripts from starting daemons: start.sh starts them by hand.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get "${apt_options[@]}" install --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
echo "slurm install: done"
