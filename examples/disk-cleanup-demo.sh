#!/usr/bin/env bash
# A disk-cleanup you can watch: a real 32 MiB tmpfs filled to ~90% with aged
# cache files and logs, a config granting remedy just that filesystem, then a
# dry-run and an apply. Needs root (it mounts a tmpfs); cleans up after itself.
#   examples/disk-cleanup-demo.sh   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p remedy
remedy=$PWD/target/debug/remedy

demo=$(mktemp -d /tmp/remedy-demo.XXXXXX)
fs=$demo/data
mkdir -p "$fs"
mount -t tmpfs -o size=32m tmpfs "$fs"
trap 'umount -l "$fs"; rm -rf "$demo"' EXIT

mkdir -p "$fs/cache/templates" "$fs/logs" "$fs/sandbox"
for day in 30 21 14 9 6 4 3 2; do
    head -c 3M /dev/zero > "$fs/cache/templates/build-$day.img"
    touch -d "$day days ago" "$fs/cache/templates/build-$day.img"
done
head -c 2M /dev/zero > "$fs/cache/templates/in-use.img"; touch -d "40 days ago" "$fs/cache/templates/in-use.img"
head -c 1M /dev/zero > "$fs/cache/fresh.img"
for n in 1 2 3; do
    head -c 1M /dev/zero > "$fs/logs/app.log.$n"; touch -d "$((n * 10)) days ago" "$fs/logs/app.log.$n"
done
sleep 600 < "$fs/cache/templates/in-use.img" & holder=$!
trap 'kill $holder; umount -l "$fs"; rm -rf "$demo"' EXIT

cat > "$demo/remedy.toml" <<TOML
[[plugin]]
name = "disk-cleanup"
source = "builtin:disk-cleanup"
params = { mountpoint = "$fs", sandbox_dirs = "$fs/sandbox", cache_dirs = "$fs/cache", log_dirs = "$fs/logs", target_used_percent = "60", nomad_gc = "false", docker_prune = "" }
[plugin.grants]
fs_read = ["$fs"]
fs_remove = ["$fs/cache", "$fs/logs", "$fs/sandbox"]
proc = ["read"]
# The demo leaves this host's Nomad and Docker alone (their tier is off above).
nomad = ["read"]
docker = ["read"]
TOML

run() { echo "\$ remedy $*"; "$remedy" --config "$demo/remedy.toml" --state-dir "$demo/state" "$@" || echo "(exit $?)"; echo; }
df -h "$fs" | sed 's/^/  /'; echo
run run disk-cleanup --dry-run
run run disk-cleanup --apply
df -h "$fs" | sed 's/^/  /'; echo
run runs list
