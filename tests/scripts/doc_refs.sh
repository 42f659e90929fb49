#!/bin/bash
# Every repository path the docs name exists (issue 21): README.md and docs/*.md (their
# text and their relative links), the man pages, and the comments of the C sources and
# headers, scripts and configs. A path is a word starting with one of the repository's
# top directories (common/ engine/ tasks/ daemon/ clients/ conf/ docs/ tests/ scripts/
# proto/ examples/); what is generated (build/gen: *.pb-c.h, nlp_pb2.py) or per-machine
# (build/, models/) and patterns (*, <...>, {a,b}, NAME, X) are not files and are skipped.
set -u
fail=0
TOP='common|engine|tasks|daemon|clients|conf|docs|tests|scripts|proto|examples'
files=$(ls README.md docs/*.md docs/man/* Makefile Dockerfile conf/*.conf 2>/dev/null;
        git ls-files 'common/*.[ch]' 'engine/*.[ch]' 'tasks/*.[ch]' 'daemon/*.[ch]' \
            'clients/*.[ch]' 'tests/*.[ch]' 'tests/*.sh' 'tests/*.bash' 'tests/*.py' \
            'scripts/*' 'clients/*.py' 2>/dev/null)
T=$(mktemp)
trap 'rm -f "$T"' EXIT
# the files that exist, each searched once: one grep (and one loop) over all of them
ex=()
for f in $files; do [ -f "$f" ] && ex+=("$f"); done
{
    # words that begin a path at a word boundary (not inside /usr/..., build/..., a URL)
    grep -HnoE "(^|[^A-Za-z0-9_./~$-])($TOP)/[A-Za-z0-9_./*<>{}%-]*[A-Za-z0-9_*>}%]" "${ex[@]}" |
        sed -E "s/^([^:]+):([0-9]+):[^a-z]?/\1 \2 /" | while read -r f line p; do
            [[ $p == *"}" && $p != *"{"* ]] && p=${p%\}}   # ${VAR:-path}
            case $p in
            *%*|*\**|*\<*|*\{*|*XXXX*|docs/s|*.pb-c.[ch]|*_pb2.py) continue ;;
            esac
            # placeholders: NAME, X, N, LANG, DIR ... as a part of the name
            [[ $p =~ (^|[/_.])(NAME|N|X|LANG|DIR|FILE|PREFIX|KIND|FAMILY)([/_.]|$) ]] && continue
            p=${p%.}
            [ -e "$p" ] || echo "$f:$line: $p does not exist"
        done
    # markdown links, relative to the page
    md=()
    for f in "${ex[@]}"; do [[ $f == *.md ]] && md+=("$f"); done
    grep -HnoE '\]\([^)#: ]+' "${md[@]}" | while IFS=: read -r f line m; do
        p=${m#](}
        [ -e "$(dirname "$f")/$p" ] || echo "$f:$line: link $p does not exist"
    done
} >"$T"
if [ -s "$T" ]; then
    cat "$T" >&2
    echo "FAIL: $(wc -l <"$T") references to files that do not exist" >&2
    exit 1
fi
echo "ok: $(echo $files | wc -w) files: every repository path named in the docs, man pages and comments exists"
