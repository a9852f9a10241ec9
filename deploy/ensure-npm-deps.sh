#!/bin/bash
# Installs the npm dependencies from the lock file when they are missing, so
# that `npm test` and `npm run demo` work on a fresh clone with no other step.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/tsc ] || [ ! -x node_modules/.bin/vitest ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "ensure-npm-deps: installing npm dependencies (npm ci)"
    npm ci --no-audit --no-fund
fi
