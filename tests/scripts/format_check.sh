#!/usr/bin/env bash
# The C files keep .clang-format's style: clang-format --dry-run --Werror on the files
# listed in .clang-format-files (one path a line, '#' comments), or, without that file,
# on every *.c and *.h git tracks. A listed file that does not exist is an error too (the
# list must not name what is gone). Fails naming each file and its first differences;
# `clang-format -i FILE` fixes one.
set -u
cd "$(dirname "$0")/../.."
fail() { echo "format_check: $*"; exit 1; }
command -v clang-format >/dev/null || fail "clang-format is not installed (make deps installs it)"
[ -f .clang-format ] || fail "no .clang-format at the top of the tree"

if [ -f .clang-format-files ]; then
    mapfile -t files < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' .clang-format-files)
    [ ${#files[@]} -gt 0 ] || fail ".clang-format-files lists no file"
elif git rev-parse --git-dir >/dev/null 2>&1; then
    mapfile -t files < <(git ls-files '*.c' '*.h')
else
    mapfile -t files < <(find . -name '*.[ch]' -not -path './build/*' | sed 's|^\./||' | sort)
fi

bad=0
for f in "${files[@]}"; do
    if [ ! -f "$f" ]; then
        echo "format_check: $f is listed in .clang-format-files but does not exist"
        bad=$((bad + 1))
        continue
    fi
    if ! out=$(clang-format --dry-run --Werror --style=file "$f" 2>&1); then
        echo "format_check: $f is not formatted (clang-format -i $f):"
        echo "$out" | head -12
        bad=$((bad + 1))
    fi
done
[ $bad -eq 0 ] || fail "$bad of ${#files[@]} file(s) not as .clang-format writes them"
echo "format_check: ${#files[@]} file(s) formatted"
