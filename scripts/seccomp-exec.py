#!/usr/bin/python3
"""seccomp-exec.py — apply a systemd unit's system-call confinement to a
command without systemd, then exec it (the last step of
scripts/sandbox-worker.sh, issue 12 acceptance 3).

  seccomp-exec.py --list UNIT            print the allowed system calls of UNIT's
                                         SystemCallFilter= lines, one a line
                                         (groups expanded with systemd-analyze)
  seccomp-exec.py --allow FILE [--unit UNIT] -- PROG [ARGS...]
                                         load the filters and exec PROG

The filters follow systemd's own: an allow list (SystemCallFilter=, the
first assignment an allow list, later ~ ones removing from it; anything else
fails with SystemCallErrorNumber=, native architecture only), plus separate
filters for MemoryDenyWriteExecute=, RestrictNamespaces= and
RestrictAddressFamilies= when UNIT sets them.  Needs no_new_privs (setpriv
--no-new-privs) or CAP_SYS_ADMIN.  Python's seccomp module is Debian's
python3-seccomp."""

import errno
import os
import re
import socket
import subprocess
import sys


def unit_settings(path):
    out = {}
    for line in open(path):
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out.setdefault(k.strip(), []).append(v.strip())
    return out


def syscall_groups():
    text = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], check=True,
                          capture_output=True, text=True).stdout
    groups, cur = {}, None
    for line in text.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), [])
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.append(line.strip())
    return groups


def expand(names, groups, seen=None):
    seen = set() if seen is None else seen
    out = set()
    for n in names:
        if n.startswith("@"):
            if n in seen:
                continue
            seen.add(n)
            if n not in groups:
                sys.exit(f"seccomp-exec: unknown system call group {n}")
            out |= expand(groups[n], groups, seen)
        else:
            out.add(n)
    return out


def allowed(unit):
    """systemd's SystemCallFilter= semantics, for the allow-list form"""
    groups = syscall_groups()
    allow = None
    for v in unit_settings(unit).get("SystemCallFilter", []):
        if not v:
            allow = None
            continue
        deny = v.startswith("~")
        names = expand(v.lstrip("~").split(), groups)
        if allow is None:
            if deny:
                sys.exit("seccomp-exec: only an allow-list SystemCallFilter= is supported")
            allow = set(names)
        elif deny:
            allow -= names
        else:
            allow |= names
    if allow is None:
        sys.exit(f"seccomp-exec: {unit} has no SystemCallFilter=")
    return sorted(allow)


def errno_of(name):
    return getattr(errno, name) if not name.isdigit() else int(name)


NS_FLAGS = {"cgroup": 0x02000000, "ipc": 0x08000000, "net": 0x40000000, "mnt": 0x00020000,
            "pid": 0x20000000, "user": 0x10000000, "uts": 0x04000000}


def load_and_exec(allow_file, unit, argv):
    import seccomp  # python3-seccomp

    settings = unit_settings(unit) if unit else {}
    err = errno_of((settings.get("SystemCallErrorNumber") or ["EPERM"])[-1])
    allow = [s.strip() for s in open(allow_file) if s.strip()]

    # 1: the allow list; the native architecture only (SystemCallArchitectures=native)
    f = seccomp.SyscallFilter(seccomp.ERRNO(err))
    for name in allow:
        try:
            f.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError, OSError):
            pass  # a name this architecture has not got (arm_fadvise64_64 ...)
    filters = [f]

    # 2: MemoryDenyWriteExecute=, RestrictNamespaces= (as systemd: own filters)
    g = seccomp.SyscallFilter(seccomp.ALLOW)
    extra = False
    if (settings.get("MemoryDenyWriteExecute") or ["no"])[-1] in ("yes", "true", "1"):
        W, X = 0x2, 0x4  # PROT_WRITE, PROT_EXEC
        g.add_rule(seccomp.ERRNO(errno.EPERM), "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, W | X, W | X))
        g.add_rule(seccomp.ERRNO(errno.EPERM), "mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, X, X))
        g.add_rule(seccomp.ERRNO(errno.EPERM), "pkey_mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, X, X))
        extra = True
    if (settings.get("RestrictNamespaces") or ["no"])[-1] in ("yes", "true", "1"):
        for flag in NS_FLAGS.values():
            g.add_rule(seccomp.ERRNO(errno.EPERM), "unshare", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
            g.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
        g.add_rule(seccomp.ERRNO(errno.EPERM), "setns")
        # clone3's flags are behind a pointer: systemd answers ENOSYS so
        # that the C library falls back to clone()
        g.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
        extra = True
    if extra:
        filters.append(g)

    # 3: RestrictAddressFamilies= (an allow list of socket() domains)
    fams = (settings.get("RestrictAddressFamilies") or [""])[-1].split()
    if fams and not fams[0].startswith("~"):
        ok = {getattr(socket, a) for a in fams}
        h = seccomp.SyscallFilter(seccomp.ALLOW)
        for af in range(0, 64):
            if af not in ok:
                h.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.EQ, af))
        filters.append(h)

    # the allow list last: it may not allow seccomp() itself
    for flt in filters[1:] + filters[:1]:
        flt.load()
    os.execv(argv[0], argv)


def main():
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == "--list":
        print("\n".join(allowed(a[1])))
        return
    if len(a) >= 4 and a[0] == "--allow" and "--" in a:
        sep = a.index("--")
        opts, argv = a[:sep], a[sep + 1:]
        unit = opts[opts.index("--unit") + 1] if "--unit" in opts else None
        if not argv:
            sys.exit("seccomp-exec: no command")
        load_and_exec(opts[1], unit, argv)
    sys.exit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main()
