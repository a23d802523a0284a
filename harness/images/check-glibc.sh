#!/usr/bin/env bash
# Check that binaries load on a base image's glibc, before they go into the image.
#
#   harness/images/check-glibc.sh MAX_GLIBC FILE...
#
# MAX_GLIBC is the base's glibc version (`2.36` for Debian 12) or a path to its libc.so.6, whose
# highest defined GLIBC_x.y version is then the limit. Each FILE is an ELF binary or shared
# object, or a Python wheel (.whl: a `manylinux_X_Y` tag above the limit fails, and every ELF
# file inside a wheel is checked the same way).
#
# Why: a binary linked on a newer glibc binds newer symbol versions (on glibc >= 2.38,
# aws-lc-sys's `sscanf` under _GNU_SOURCE binds `__isoc23_sscanf@GLIBC_2.38`), and the dynamic
# loader of an older base refuses to start it. Failing here names the symbol, instead of a
# smoke test failing later with "version `GLIBC_2.38' not found".
#
# Exit status: 0 if every file fits, 1 if one needs a newer glibc (each offending symbol named),
# 2 on a usage error or a missing tool. Needs objdump (binutils) or readelf; python3 for wheels.
# CHECK_GLIBC_TOOL=objdump|readelf picks one (default: objdump if installed).
set -euo pipefail

usage() { echo "usage: $0 MAX_GLIBC|LIBC_SO FILE..." >&2; exit 2; }
[[ $# -ge 2 ]] || usage
limit=$1
shift

# x.y[.z] <= x.y[.z], numerically per component.
version_le() { [[ $(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1) == "$1" ]]; }

# `version symbol` for each versioned glibc symbol the ELF file $1 needs (undefined ones:
# what the loader must find in the base's libc), or nothing if it needs none.
tool=${CHECK_GLIBC_TOOL:-}
if [[ -z $tool ]]; then
    if command -v objdump >/dev/null; then tool=objdump; else tool=readelf; fi
fi
case $tool in objdump | readelf) ;; *) echo "check-glibc: CHECK_GLIBC_TOOL=$tool: objdump or readelf" >&2; exit 2 ;; esac
command -v "$tool" >/dev/null || { echo "check-glibc: $tool not found (install binutils)" >&2; exit 2; }

needed_symbols() {
    if [[ $tool == objdump ]]; then
        # 0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.38) __isoc23_sscanf
        # Older binutils print the version without parentheses.
        objdump -T "$1" 2>/dev/null |
            sed -n 's/.*\*UND\*[[:space:]]\+[0-9a-f]\+[[:space:]]\+(\?GLIBC_\([0-9][0-9.]*\))\?[[:space:]]\+\([^[:space:]]\+\)$/\1 \2/p'
    else
        #     5: 0000000000000000     0 FUNC    GLOBAL DEFAULT  UND __isoc23_sscanf@GLIBC_2.38 (7)
        readelf --dyn-syms -W "$1" 2>/dev/null |
            sed -n 's/.* UND \([^@[:space:]]\+\)@GLIBC_\([0-9][0-9.]*\).*/\2 \1/p'
    fi
}

# The highest GLIBC_x.y version libc.so.6 $1 defines.
defined_max() {
    if [[ $tool == objdump ]]; then
        objdump -p "$1" | sed -n 's/.*[[:space:]]GLIBC_\([0-9][0-9.]*\)$/\1/p'
    else
        readelf -V -W "$1" | sed -n 's/.*Name: GLIBC_\([0-9][0-9.]*\).*/\1/p'
    fi | sort -V | tail -n1
}

if [[ -f $limit ]]; then
    max=$(defined_max "$limit")
    [[ -n $max ]] || { echo "check-glibc: $limit defines no GLIBC_x.y version: not a libc.so.6?" >&2; exit 2; }
else
    max=$limit
fi
[[ $max =~ ^[0-9]+(\.[0-9]+)+$ ]] || usage

is_elf() { [[ $(head -c4 "$1" | od -An -c | tr -d ' ') == '177ELF' ]]; }

failed=0
# Check ELF file $1 (shown as $2).
check_elf() {
    local file=$1 shown=$2 bad newest
    newest=$(needed_symbols "$file" | sort -V -k1,1 | tail -n1)
    bad=$(needed_symbols "$file" | while read -r version symbol; do
        version_le "$version" "$max" || echo "$symbol@GLIBC_$version"
    done | sort -u)
    if [[ -n $bad ]]; then
        echo "check-glibc: $shown needs a glibc newer than the base's $max:" >&2
        sed 's/^/    /' <<<"$bad" >&2
        echo "    build it where glibc <= $max (a Debian 12 builder, or an ubuntu-22.04 runner: 2.35)" >&2
        failed=1
    else
        echo "check-glibc: $shown ok (newest glibc symbol: ${newest:-none}; base has $max)"
    fi
}

for file in "$@"; do
    [[ -f $file ]] || { echo "check-glibc: $file: no such file" >&2; exit 2; }
    case $file in
    *.whl)
        # manylinux_2_28 (PEP 600) or its aliases manylinux2014 (2.17), manylinux2010 (2.12),
        # manylinux1 (2.5) promise the wheel runs on that glibc or newer.
        name=$(basename "$file")
        tag=$(sed -n 's/.*manylinux_\([0-9]\+\)_\([0-9]\+\)_.*/\1.\2/p' <<<"$name")
        [[ $name == *manylinux2014_* ]] && tag=${tag:-2.17}
        [[ $name == *manylinux2010_* ]] && tag=${tag:-2.12}
        [[ $name == *manylinux1_* ]] && tag=${tag:-2.5}
        if [[ -n $tag ]] && ! version_le "$tag" "$max"; then
            echo "check-glibc: $name is tagged for glibc $tag, newer than the base's $max" >&2
            failed=1
            continue
        fi
        dir=$(mktemp -d)
        python3 -m zipfile -e "$file" "$dir"
        while IFS= read -r -d '' inner; do
            is_elf "$inner" && check_elf "$inner" "$name:${inner#"$dir"/}"
        done < <(find "$dir" -type f \( -name '*.so' -o -name '*.so.*' \) -print0)
        rm -rf "$dir"
        ;;
    *)
        if is_elf "$file"; then
            check_elf "$file" "$file"
        else
            echo "check-glibc: $file is not an ELF file" >&2
            exit 2
        fi
        ;;
    esac
done
exit "$failed"
