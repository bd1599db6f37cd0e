#!/bin/sh
# Prints the git revision crunch-secrets is built from, for `crunch-secrets --version`: the
# commit (with "-dirty" when the tree has uncommitted changes), or, in a source tree exported
# without .git (packaging/build-deb.sh), the revision recorded in its .git-revision file.
cd "$(dirname "$0")/.." || exit 1
if git rev-parse --git-dir >/dev/null 2>&1; then
  exec git describe --always --dirty --abbrev=12 --exclude='*'
fi
if [ -f .git-revision ]; then
  exec cat .git-revision
fi
exit 1
