#!/bin/sh
# check-style.sh - the house rules a compiler does not check (curl's
# checksrc in spirit). Prints each problem as FILE:LINE: rule: message and
# exits 1 if there is one.
#
#   scripts/check-style.sh [ROOT]      (ROOT holds src/ and tests/; default .)
#
# Rules (STYLE.md; docs/ARCHITECTURE.md, "Checked style"):
#   banned     sprintf vsprintf strcpy strcat strncat strncpy strtok gets atoi
#              atol atoll atof (no bound, no termination or no error), and
#              gmtime localtime ctime asctime (a buffer shared by every thread)
#              are not called in src/, tests/ or bench/ C code (comments and
#              strings do not count)
#   contract   every src/ .c and .h starts with a comment "/* NAME - what it
#              is", the top of its contract
#   include    in a .c its own header comes first (when it has one); then the
#              project's headers ("..."), then the system's (<...>); the same
#              order in a .h; no header twice
#   unit-test  every gateway module (src/*.c but main.c and sluice-mock's
#              mock*.c) has its own tests/unit/test_MODULE.c
#   circle     the #include graph of src/ has no circle; a module is a .c and
#              its .h. Circles are always printed and fail the check (the
#              graph has none since the request phases); CHECK_CYCLES=0 only prints them.
#   layout     docs/ARCHITECTURE.md's layout table lists every entry of src/,
#              src/mock/, src/tune/ and conf/, and nothing that is gone
#              (checked when the tree has a docs/ folder)
set -eu

root=${1:-.}
cd "$root"
[ -d src ] || { echo "check-style: no src/ under $root" >&2; exit 2; }

# tests/style/ holds the checker's own test trees, each breaking a rule.
c_files=$(find src tests bench -path tests/style -prune -o -name '*.[ch]' -print 2>/dev/null |
    LC_ALL=C sort)
src_files=$(find src -name '*.[ch]' | LC_ALL=C sort)
problems=0

# The rules that read files, in one awk pass over every file. A file under
# src/ gets every rule; tests/ and bench/ only the banned calls.
awk_out=$(printf '%s\n' $c_files | awk -v cycles="${CHECK_CYCLES:-1}" '
BEGIN {
    banned = "sprintf|vsprintf|strcpy|strcat|strncat|strncpy|strtok|gets|atoi|atol|atoll|atof|gmtime|localtime|ctime|asctime"
    why["sprintf"] = "no bound: snprintf or buf_printf"
    why["vsprintf"] = "no bound: vsnprintf or buf_vprintf"
    why["strcpy"] = "no bound: memcpy with a known length, or snprintf"
    why["strcat"] = "no bound: a struct buf, or snprintf"
    why["strncat"] = "its bound is what is left, not the size: a struct buf"
    why["strncpy"] = "may leave no terminator and pads: memcpy, or snprintf"
    why["strtok"] = "hidden state shared by every thread: strtok_r, or strcspn"
    why["gets"] = "no bound at all: fgets"
    why["atoi"] = "no error: parse_long (util.h) or strtol with a check"
    why["atol"] = why["atoi"]; why["atoll"] = why["atoi"]
    why["atof"] = "no error: parse_double (util.h) or strtod with a check"
    why["gmtime"] = "a static result shared by threads: gmtime_r"
    why["localtime"] = "a static result shared by threads: localtime_r"
    why["ctime"] = "a static result shared by threads: strftime"
    why["asctime"] = "a static result shared by threads: strftime"
    nmod = 0
}
function problem(file, line, rule, msg) {
    printf "%s:%d: %s: %s\n", file, line, rule, msg
    nproblems++
}
function exists(path,    r, l) {
    if (path in known)
        return known[path]
    r = (getline l < path) >= 0
    close(path)
    known[path] = r
    return r
}
function dirname(p,    i) {
    for (i = length(p); i > 0 && substr(p, i, 1) != "/"; i--)
        ;
    return i > 0 ? substr(p, 1, i - 1) : "."
}
function basename(p) {
    sub(/.*\//, "", p)
    return p
}
function module(p) {
    sub(/\.[ch]$/, "", p)
    return p
}
function node(m) {
    if (!(m in idx)) {
        idx[m] = ++nmod
        name[nmod] = m
    }
    return idx[m]
}
# Blank out comments, string and character literals of one line, keeping
# its length; incomment carries a /* */ comment across lines.
function code_of(s,    out, i, n, c, d, q) {
    out = ""
    n = length(s)
    for (i = 1; i <= n; i++) {
        c = substr(s, i, 1)
        d = substr(s, i, 2)
        if (incomment) {
            if (d == "*/") {
                incomment = 0
                out = out "  "
                i++
            } else {
                out = out " "
            }
        } else if (d == "/*") {
            incomment = 1
            out = out "  "
            i++
        } else if (d == "//") {
            break
        } else if (c == "\"" || c == "\047") {
            q = c
            out = out q
            for (i++; i <= n; i++) {
                c = substr(s, i, 1)
                if (c == "\\") {
                    out = out "  "
                    i++
                } else if (c == q) {
                    break
                } else {
                    out = out " "
                }
            }
            out = out q
        } else {
            out = out c
        }
    }
    return out
}
function end_file(    k) {
    if (file != "" && insrc && file ~ /\.c$/) {
        own = module(basename(file)) ".h"
        key = "\"" own "\""
        if (exists(dirname(file) "/" own) && !(key in inc_line))
            problem(file, 1, "include", "it does not include its own header " key)
        else if (exists(dirname(file) "/" own) && inc_seq[key] != 1)
            problem(file, inc_line[key], "include", "its own header " key " must come first")
    }
    for (k in inc_line)
        delete inc_line[k]
    for (k in inc_seq)
        delete inc_seq[k]
}
{
    path = $0
    end_file()
    file = path
    insrc = file ~ /^src\//
    incomment = 0
    ninc = 0
    seen_system = 0
    lineno = 0
    first = ""
    if (insrc)
        node(module(file))
    while ((r = getline s < file) > 0) {
        lineno++
        if (lineno == 1)
            first = s
        code = code_of(s)
        t = code
        while (match(t, "(^|[^A-Za-z0-9_])(" banned ")[ \t]*\\(")) {
            hit = substr(t, RSTART, RLENGTH)
            sub(/^[^A-Za-z]/, "", hit)
            sub(/[ \t]*\($/, "", hit)
            problem(file, lineno, "banned", hit "() is banned: " why[hit])
            t = substr(t, RSTART + RLENGTH)
        }
        if (!insrc || s !~ /^[ \t]*#[ \t]*include[ \t]*["<]/)
            continue
        h = s
        sub(/^[ \t]*#[ \t]*include[ \t]*/, "", h)
        sys = substr(h, 1, 1) == "<"
        h = substr(h, 2)
        sub(/[">].*/, "", h)
        ninc++
        key = sys ? "<" h ">" : "\"" h "\""
        if (key in inc_line)
            problem(file, lineno, "include", key " is included twice (first on line " \
                    inc_line[key] ")")
        else {
            inc_line[key] = lineno
            inc_seq[key] = ninc
        }
        if (sys) {
            seen_system = 1
        } else {
            if (seen_system)
                problem(file, lineno, "include", "\"" h "\" after a system header: the project" \
                        "\047s headers come before <...> ones")
            target = dirname(file) "/" h
            if (!exists(target))
                target = "src/" h
            if (exists(target) && module(target) != module(file)) {
                a = node(module(file))
                b = node(module(target))
                if (!((a, b) in edge)) {
                    edge[a, b] = file ":" lineno
                    nout[a]++
                    out[a, nout[a]] = b
                }
            }
        }
    }
    close(file)
    if (insrc && index(first, "/* " basename(file) " - ") != 1)
        problem(file, 1, "contract", "the file must start with its contract: /* " basename(file) \
                " - what it is ...")
}
# Tarjan: the strongly connected components of the module graph.
function strong(v,    i, w) {
    index_[v] = lowlink[v] = ++counter
    stack[++sp] = v
    onstack[v] = 1
    for (i = 1; i <= nout[v]; i++) {
        w = out[v, i]
        if (!(w in index_)) {
            strong(w)
            if (lowlink[w] < lowlink[v])
                lowlink[v] = lowlink[w]
        } else if (onstack[w] && index_[w] < lowlink[v]) {
            lowlink[v] = index_[w]
        }
    }
    if (lowlink[v] == index_[v]) {
        ncomp++
        size[ncomp] = 0
        do {
            w = stack[sp--]
            onstack[w] = 0
            comp[w] = ncomp
            size[ncomp]++
        } while (w != v)
    }
}
# The shortest circle through v within its component: its modules in
# cyc[1..n], cyc[1] = v, each including the next (the last includes v).
function circle(v,    head, tail, i, u, w, q, prev, n, k) {
    head = tail = 1
    q[1] = v
    prev[v] = 0
    while (head <= tail) {
        u = q[head++]
        for (i = 1; i <= nout[u]; i++) {
            w = out[u, i]
            if (comp[w] != comp[v])
                continue
            if (w == v) {
                n = 0
                for (k = u; k != v; k = prev[k])
                    n++
                ncyc = n + 1
                cyc[1] = v
                for (k = u; k != v; k = prev[k])
                    cyc[n-- + 1] = k
                return
            }
            if (!(w in prev)) {
                prev[w] = u
                q[++tail] = w
            }
        }
    }
    ncyc = 0
}
function short(m) {
    sub(/^src\//, "", m)
    return m
}
END {
    end_file()
    for (v = 1; v <= nmod; v++)
        if (!(v in index_))
            strong(v)
    for (c = 1; c <= ncomp; c++) {
        if (size[c] < 2)
            continue
        members = ""
        for (v = 1; v <= nmod; v++)
            if (comp[v] == c)
                members = members " " short(name[v])
        printf "circle: %d modules include each other:%s\n", size[c], members
        for (v = 1; v <= nmod; v++) {
            if (comp[v] != c)
                continue
            circle(v)
            # the same circle is found from each of its modules: print it
            # once, from its first module in file order
            low = 1
            for (i = 2; i <= ncyc; i++)
                if (cyc[i] < cyc[low])
                    low = i
            key = ""
            for (i = 0; i < ncyc; i++)
                key = key " " cyc[(low - 1 + i) % ncyc + 1]
            if (key in printed)
                continue
            printed[key] = 1
            line = "  "
            for (i = 0; i < ncyc; i++)
                line = line short(name[cyc[(low - 1 + i) % ncyc + 1]]) " -> "
            print line short(name[cyc[low]])
            for (i = 0; i < ncyc; i++) {
                a = cyc[(low - 1 + i) % ncyc + 1]
                b = cyc[(low + i) % ncyc + 1]
                printf "    %s: includes %s\n", edge[a, b], short(name[b]) ".h"
            }
        }
        if (cycles == "1")
            nproblems++
    }
    exit (nproblems > 0)
}') || problems=1
[ -n "$awk_out" ] && printf '%s\n' "$awk_out"

# unit-test: a test file per gateway module.
for f in src/*.c; do
    m=$(basename "$f" .c)
    case $m in main | mock*) continue ;; esac
    if [ ! -f "tests/unit/test_$m.c" ]; then
        echo "$f:1: unit-test: module $m has no tests/unit/test_$m.c"
        problems=1
    fi
done

# layout: docs/ARCHITECTURE.md's layout table names every entry of src/,
# src/mock/, src/tune/ and conf/ (a .c's row covers its .h; a folder is
# written `name/`), under a "### `DIR/`" heading of its "## Layout"
# section, and names nothing that is not there. A tree with no docs/ (the
# checker's own test trees) has no table to check.
layout_dirs="src src/mock src/tune conf"
if [ -d docs ]; then
    arch=docs/ARCHITECTURE.md
    if [ ! -f "$arch" ]; then
        echo "$arch:1: layout: missing: it holds the layout table"
        problems=1
    else
        layout_tmp=$(mktemp)
        for d in $layout_dirs; do
            [ -d "$d" ] || continue
            for f in "$d"/*; do
                [ -e "$f" ] || continue
                n=$(basename "$f")
                # the tool folders have tables of their own
                case " $layout_dirs " in *" $d/$n "*) continue ;; esac
                if [ -d "$f" ]; then
                    printf '%s\t%s/\n' "$d" "$n"
                else
                    printf '%s\t%s\n' "$d" "$n"
                fi
            done
        done >"$layout_tmp"
        layout_out=$(awk -F '\t' -v arch="$arch" -v dirs="$layout_dirs" '
function problem(line, msg) {
    printf "%s:%d: layout: %s\n", arch, line, msg
    bad = 1
}
FNR == NR {
    disk[$1, $2] = 1
    order[++n] = $1 SUBSEP $2
    next
}
/^## / {
    insec = $0 ~ /^## Layout[ \t]*$/
    if (insec)
        secline = FNR
    dir = ""
    next
}
insec && /^### / {
    if (match($0, /`[^`]+`/)) {
        dir = substr($0, RSTART + 1, RLENGTH - 2)
        sub(/\/$/, "", dir)
        head[dir] = FNR
    }
    next
}
insec && dir != "" && /^\|/ {
    cell = $0
    sub(/^\|/, "", cell)
    sub(/\|.*/, "", cell)
    while (match(cell, /`[^`]+`/)) {
        name = substr(cell, RSTART + 1, RLENGTH - 2)
        if (!((dir, name) in listed)) {
            listed[dir, name] = FNR
            lorder[++nl] = dir SUBSEP name
        }
        cell = substr(cell, RSTART + RLENGTH)
    }
}
END {
    nd = split(dirs, dl, " ")
    for (i = 1; i <= n; i++) {
        split(order[i], k, SUBSEP)
        d = k[1]
        f = k[2]
        if (!(d in head)) {
            if (!(d in nohead))
                problem(secline ? secline : 1, "no \"### `" d "/`\" table in the Layout section for " d "/")
            nohead[d] = 1
            continue
        }
        if ((d, f) in listed)
            continue
        c = f
        if (sub(/\.h$/, ".c", c) && (d, c) in disk && (d, c) in listed)
            continue
        problem(head[d], d "/" f " is not in the layout table")
    }
    for (i = 1; i <= nl; i++) {
        split(lorder[i], k, SUBSEP)
        if (!((k[1], k[2]) in disk))
            problem(listed[k[1], k[2]], "`" k[2] "` is listed under " k[1] "/, which has no such entry")
    }
    exit bad
}' "$layout_tmp" "$arch") || problems=1
        rm -f "$layout_tmp"
        [ -n "$layout_out" ] && printf '%s\n' "$layout_out"
    fi
fi

if [ "$problems" -ne 0 ]; then
    echo "check-style: FAILED (rules: scripts/check-style.sh)" >&2
    exit 1
fi
if printf '%s\n' "$awk_out" | grep -q '^circle:'; then
    echo "check-style: ok, but for the circles above (CHECK_CYCLES=0 let them pass)" >&2
else
    echo "check-style: ok" >&2
fi
