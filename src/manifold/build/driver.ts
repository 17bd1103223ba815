/**
 * The program a build dyno runs (bash, as the dyno's unprivileged user, inside the dyno's
 * namespaces): Heroku's buildpack API over the tree the daemon staged at /app:
 *
 *   /app/build        the source (BUILD_DIR), compiled in place (the dyno's /app is copy-on-write)
 *   /app/cache        the app's build cache from the last build (CACHE_DIR)
 *   /app/env          one file per config var (ENV_DIR)
 *   /app/buildpacks/N the buildpacks in order, /app/buildpacks/names their names (line N+1)
 *
 * MANIFOLD_BUILD_MODE=detect: the first buildpack whose bin/detect succeeds is used; explicit: all
 * of them, each of which must detect. Progress goes to stderr (fd 2, read line by line by the
 * daemon); the result leaves on the original stdout (fd 3 here) as one tar: build/, cache/ and
 * meta/ (buildpacks never see fd 3; names: the buildpacks used; compile-ms: their compile times; release-N.yml: what each
 * bin/release printed). Exit 10: nothing detected / incompatible, 11: compile failed, 12: bin/release failed.
 */
export const DRIVER_SCRIPT = String.raw`#!/bin/bash
set -u
exec 3>&1 1>&2
BUILD_DIR=/app/build
CACHE_DIR=/app/cache
ENV_DIR=/app/env
META=/tmp/meta
mkdir -p "$META" || exit 1
: > "$META/names"
: > "$META/compile-ms"
mapfile -t NAMES < /app/buildpacks/names
COUNT=${"$"}{#NAMES[@]}
ms() { echo $(( $(date +%s%N) / 1000000 )); }

detect() { # $1 = index; prints the detected name, returns detect's status
  local out
  out=$(cd "$BUILD_DIR" && /app/buildpacks/$1/bin/detect "$BUILD_DIR" 2>/dev/null 3>&-)
  local rc=$?
  out=$(printf '%s' "$out" | head -n 1 | tr -d '\r' | cut -c1-100)
  printf '%s' "$out"
  return $rc
}

SELECTED=()
LABELS=()
if [ "${"$"}{MANIFOLD_BUILD_MODE:-detect}" = detect ]; then
  for ((i = 0; i < COUNT; i++)); do
    if label=$(detect $i); then SELECTED+=($i); LABELS+=("$label"); break; fi
  done
  if [ ${"$"}{#SELECTED[@]} -eq 0 ]; then
    echo " !     No default language could be detected for this app."
    echo " !     Buildpacks tried: ${"$"}{NAMES[*]}"
    echo " !     Set one with: manifold buildpacks:set BUILDPACK -a APP"
    exit 10
  fi
else
  for ((i = 0; i < COUNT; i++)); do
    if label=$(detect $i); then SELECTED+=($i); LABELS+=("$label"); else
      echo " !     App not compatible with buildpack: ${"$"}{NAMES[$i]}"
      exit 10
    fi
  done
fi

for ((j = 0; j < ${"$"}{#SELECTED[@]}; j++)); do
  i=${"$"}{SELECTED[$j]}
  name=${"$"}{NAMES[$i]}
  label=${"$"}{LABELS[$j]}
  if [ -n "$label" ]; then echo "-----> $label app detected"; else echo "-----> App detected by buildpack $name"; fi
  t0=$(ms)
  (cd "$BUILD_DIR" && /app/buildpacks/$i/bin/compile "$BUILD_DIR" "$CACHE_DIR" "$ENV_DIR" 3>&-)
  rc=$?
  t1=$(ms)
  echo $((t1 - t0)) >> "$META/compile-ms"
  if [ $rc -ne 0 ]; then
    echo " !     Push rejected, failed to compile ${"$"}{label:-app} app (buildpack $name, exit status $rc)."
    exit 11
  fi
  echo "$name" >> "$META/names"
  if [ -x /app/buildpacks/$i/bin/release ]; then
    if ! (cd "$BUILD_DIR" && /app/buildpacks/$i/bin/release "$BUILD_DIR" 3>&-) > "$META/release-$j.yml"; then
      echo " !     bin/release of buildpack $name failed."
      exit 12
    fi
  fi
done

tar -cf - -C /app build cache -C /tmp meta >&3 || exit 1
exit 0
`;
