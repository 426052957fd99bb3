#!/usr/bin/env bash
# The run config's keys and their documentation stay in step: `train --help-config` lists
# every key once with its default; every key is in README.md's Configuration tables, and
# every key those tables name exists; and a config written from the listed defaults loads.
# Usage: test_config_keys.sh path/to/denserl
set -u
source "$(dirname "$0")/shtest.sh"

"$BIN" train --help-config >"$W/keys.txt"
expect_eq "--help-config exits 0" 0 "$?"
out=$(python3 - "$W/keys.txt" "$ROOT/README.md" "$W/defaults.json" <<'PY' 2>&1
import json, re, sys
keys, defaults = [], {}
for line in open(sys.argv[1]):
    key, value = line.split()[:2]
    keys.append(key)
    node = defaults
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = json.loads(value)
errs = []
if len(keys) != len(set(keys)):
    errs.append("a key listed twice")
if len(keys) < 50:
    errs.append(f"only {len(keys)} keys")
readme = open(sys.argv[2]).read()
section = readme[readme.index("\n## Configuration"):]
section = section[:section.index("\n## ", 1)]
named = set(re.findall(r"^\| ([^|]*)\|", section, re.M))
documented = set()
for cell in named:
    documented |= set(re.findall(r"`([a-z_0-9.]+)`", cell))
errs += [f"not in README: {k}" for k in keys if k not in documented]
errs += [f"README names no key: {k}" for k in sorted(documented - set(keys))]
json.dump(defaults, open(sys.argv[3], "w"))
print("; ".join(errs) if errs else f"ok ({len(keys)} keys)")
PY
)
expect "every key listed once, documented, and every documented key real" "ok (" "$out"
# the defaults as listed make a config that loads (nothing runs: no steps)
"$BIN" train "$W/defaults.json" --set sft.steps=0 --set rl.steps=0 --set task.eval_size=1 \
    --set run_dir="$W/run" --dry-run >"$W/dry.log" 2>&1 &&
    ok "a config of the listed defaults loads" || bad "defaults config: $(tail -2 "$W/dry.log")"

finish
