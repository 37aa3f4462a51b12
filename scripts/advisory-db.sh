#!/usr/bin/env bash
# Put the RustSec advisory database where deny.toml's `db-path` expects it, from the
# snapshot in ../shared/rustsec (this machine cannot fetch it), print the snapshot's
# date, and warn when it is older than deny.toml's `warn-after-days` comment says.
#   scripts/advisory-db.sh [BUNDLE]      # default: ../shared/rustsec/advisory-db.bundle
# Where the network allows, `cargo deny fetch db` refreshes the same directory instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle="${1:-../shared/rustsec/advisory-db.bundle}"
# cargo-deny names the clone after the database URL: `<db-path>/advisory-db-<hash>`.
db=target/advisory-dbs/advisory-db-3157b0e258782691
if [ ! -d "$db/.git" ]; then
  [ -f "$bundle" ] || { echo "no advisory database at $db and no bundle at $bundle" >&2; exit 1; }
  rm -rf "$db"
  git -c init.defaultBranch=main clone -q "$bundle" "$db"
fi
commit_time=$(git -C "$db" log -1 --format=%ct)
# cargo-deny judges an unfetched database's age by FETCH_HEAD's modification time: give
# it the snapshot's own time, so the staleness limit measures the data, not the clone.
touch "$db/.git/FETCH_HEAD"
touch -d "@$commit_time" "$db/.git/FETCH_HEAD"
age_days=$(( ( $(date +%s) - commit_time ) / 86400 ))
echo "RustSec advisory database: snapshot of $(git -C "$db" log -1 --format=%cs) ($(git -C "$db" log -1 --format=%h)), $age_days days old"
warn_after=$(sed -n 's/^# warn-after-days: *\([0-9][0-9]*\).*/\1/p' deny.toml)
if [ -n "$warn_after" ] && [ "$age_days" -gt "$warn_after" ]; then
  echo "warning: the advisory database is older than $warn_after days (deny.toml); advisories published since $(git -C "$db" log -1 --format=%cs) are not checked. Refresh ../shared/rustsec or run 'cargo deny fetch db' where the network allows."
fi
