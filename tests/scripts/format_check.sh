#!/usr/bin/env bash
# The C files keep .clang-format's style: clang-format --dry-run --Werror on every *.c and
# *.h git tracks (outside a git checkout: every one under the tree but build/). Fails
# naming each file and its first differences; `clang-format -i FILE` fixes one.
set -u
cd "$(dirname "$0")/../.."
fail() { echo "format_check: $*"; exit 1; }
command -v clang-format >/dev/null || fail "clang-format is not installed (make deps installs it)"
[ -f .clang-format ] || fail "no .clang-format at the top of the tree"

if git rev-parse --git-dir >/dev/null 2>&1; then
    mapfile -t files < <(git ls-files '*.c' '*.h')
else
    mapfile -t files < <(find . -name '*.[ch]' -not -path './build/*' | sed 's|^\./||' | sort)
fi
[ ${#files[@]} -gt 0 ] || fail "no C file found"

# One clang-format for every file; only if it finds something, one per file to name them.
clang-format --dry-run --Werror --style=file "${files[@]}" >/dev/null 2>&1 && {
    echo "format_check: ${#files[@]} file(s) formatted"
    exit 0
}
bad=0
for f in "${files[@]}"; do
    if ! out=$(clang-format --dry-run --Werror --style=file "$f" 2>&1); then
        echo "format_check: $f is not formatted (clang-format -i $f):"
        echo "$out" | head -12
        bad=$((bad + 1))
    fi
done
[ $bad -eq 0 ] || fail "$bad of ${#files[@]} file(s) not as .clang-format writes them"
echo "format_check: ${#files[@]} file(s) formatted"
