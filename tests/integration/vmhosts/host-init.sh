#!/bin/sh
# PID 1 of one VM-like test host (tests/integration/vmhosts/__init__.py starts it; never run it by hand).
#
#   setpriv --pdeathsig KILL -- unshare --fork --pid --mount --uts --mount-proc --kill-child=SIGKILL \
#       host-init.sh HOSTDIR NAME CGROUP PROBE...
#
# It builds the host's private view of the machine, checks it, and only then execs systemd as the host's PID 1:
#   /run, /tmp, /var/tmp   fresh tmpfs. A systemd started without them EMPTIES THE MACHINE'S /tmp (its
#                          systemd-tmpfiles-setup runs 'D /tmp' at boot): nothing below runs systemd unless all
#                          three are private tmpfs and the machine's probe files (PROBE...) are invisible.
#   /etc, /var, /root      copy-on-write overlays (upper layer in HOSTDIR/fs/<dir>.upper); HOSTDIR/seed/<dir> is
#                          copied on top (units, sshd_config, host keys, sudoers.d, hostname, machine-id)
#   /srv, /home            bind mounts of HOSTDIR/fs/srv and HOSTDIR/fs/home
#   /sys, /proc/sys        read-only
#   /dev                   a tmpfs with the few device nodes a host needs, its own devpts; /dev/console is
#                          HOSTDIR/console.log
#   cgroups                this process moves into CGROUP (cgroup directories created by the caller: the unified
#                          and name=systemd hierarchies, or the one cgroup2 tree), so each host's systemd has a
#                          cgroup tree of its own
# Everything is mounted in the mount namespace unshare made, after 'mount --make-rprivate /': nothing propagates
# to the machine, and the mounts vanish with the namespace when its PID 1 is killed (SIGKILL from outside).
set -eu

die() {
    echo "host-init: $*; systemd NOT started" >&2
    exit 70
}

[ "$#" -ge 3 ] || die "usage: host-init.sh HOSTDIR NAME CGROUP [PROBE...]"
HOSTDIR=$1
NAME=$2
CGROUP=$3
shift 3
[ "$$" -eq 1 ] || die "not PID 1 of a new pid namespace (pid $$)"
case $HOSTDIR in /*) ;; *) die "HOSTDIR must be absolute" ;; esac
[ -d "$HOSTDIR/fs" ] || die "$HOSTDIR/fs is missing"

mount --make-rprivate /

# --- a private, empty /run first ----------------------------------------------------------------------------
mount -t tmpfs -o mode=0755,nosuid,nodev,size=64m tmpfs /run

# --- the host's own filesystem view ----------------------------------------------------------------------------
for d in etc var root; do
    mkdir -p "$HOSTDIR/fs/$d.upper" "$HOSTDIR/fs/$d.work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$HOSTDIR/fs/$d.upper,workdir=$HOSTDIR/fs/$d.work" "/$d"
    [ "$(findmnt -n -o FSTYPE --mountpoint "/$d" | tail -n 1)" = overlay ] || die "/$d is not an overlay"
done
for d in srv home; do
    mount --bind "$HOSTDIR/fs/$d" "/$d"
done

# --- kernel interfaces read-only; a private /dev (nothing is created in the machine's devtmpfs) -------------------
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
mount -o remount,bind,ro /sys
mount -t tmpfs -o mode=0755,nosuid,size=4m tmpfs /dev
while read -r node major minor; do
    mknod -m 0666 "/dev/$node" c "$major" "$minor"
done <<'NODES'
null 1 3
zero 1 5
full 1 7
random 1 8
urandom 1 9
tty 5 0
NODES
mkdir -m 0755 /dev/pts
mkdir -m 1777 /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev,size=16m tmpfs /dev/shm
ln -s pts/ptmx /dev/ptmx
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
: >>"$HOSTDIR/console.log"
: >/dev/console
mount --bind "$HOSTDIR/console.log" /dev/console

# --- seed files, hostname, users ------------------------------------------------------------------------------
for d in etc var root; do
    if [ -d "$HOSTDIR/seed/$d" ]; then cp -a "$HOSTDIR/seed/$d/." "/$d/"; fi
done
hostname "$NAME"
if [ -f "$HOSTDIR/seed/users" ]; then
    # one line per user: NAME [authorized_keys file]; password '*' (no password, not locked: sshd without PAM
    # refuses locked accounts)
    while read -r user keys; do
        [ -n "$user" ] || continue
        id "$user" >/dev/null 2>&1 || useradd --create-home --user-group --shell /bin/bash --password '*' "$user"
        if [ -n "${keys:-}" ]; then
            install -d -m 0700 -o "$user" -g "$user" "/home/$user/.ssh"
            install -m 0600 -o "$user" -g "$user" "$keys" "/home/$user/.ssh/authorized_keys"
        fi
    done <"$HOSTDIR/seed/users"
fi

# --- private /tmp and /var/tmp, after everything that reads HOSTDIR (it may live below the machine's /tmp) ----
mount -t tmpfs -o mode=1777,nosuid,nodev,size=256m tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev,size=64m tmpfs /var/tmp
for m in /run /tmp /var/tmp; do
    [ "$(stat -f -c %T "$m")" = tmpfs ] || die "$m is not a tmpfs"
    [ "$(findmnt -n -o FSTYPE --mountpoint "$m" | tail -n 1)" = tmpfs ] || die "$m is not a tmpfs mount"
done
for p in "$@"; do
    # the caller's probe files in the machine's /tmp and /var/tmp must be hidden now
    [ ! -e "$p" ] || die "probe $p is still visible: the machine's directory is not covered"
done

# --- a cgroup tree of its own (CGROUP: absolute cgroup directories, ':'-separated, one per hierarchy) ----------
old_ifs=$IFS
IFS=:
for cg in $CGROUP; do
    case $cg in /sys/fs/cgroup/*) ;; *) die "cgroup $cg is not below /sys/fs/cgroup" ;; esac
    [ -d "$cg" ] || die "cgroup $cg is missing"
    echo "$$" >"$cg/cgroup.procs"
done
IFS=$old_ifs

# --- last check, then systemd ----------------------------------------------------------------------------------
for m in /run /tmp /var/tmp; do
    [ "$(stat -f -c %T "$m")" = tmpfs ] || die "$m is not a tmpfs"
done
exec env -i container=zdt-vmhost PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    /lib/systemd/systemd --system --unit=zdt-host.target --log-target=console --show-status=no
