/**
 * The programs inside the project's test template (test-template.ts builds it): `/init` of a busybox-static
 * initramfs and its udhcpc script. The guest does what a cloud image with cloud-init's CloudStack datasource does
 * on first boot, and says each result on its serial console in one line a test can parse:
 *
 *   STACKNET-INIT uptime=<s>                        /init started (the kernel's boot is done)
 *   STACKNET-DHCP uptime=<s>                        its DHCP client starts (eth0 is up)
 *   STACKNET-LEASE ip=<ip> mask=<mask> router=<gw> dns=<dns,...> hostname=<name>
 *   STACKNET-TIMING lease=<s>                       uptime when the lease was bound
 *   STACKNET-META <key>=<value>                     each key of `latest/meta-data/` (newlines as \n)
 *   STACKNET-USERDATA <base64>                      `latest/user-data` (empty when there is none)
 *   STACKNET-PASSWORD <password>                    from the password server (empty when none)
 *   STACKNET-PING name=<n> ip=<resolved> ok|fail    each peer the user-data names (below)
 *   STACKNET-READY uptime=<s>                       all of the above done; the guest stays up
 *   STACKNET-CLOCK tsc=<n> uptime=<s>-<s>           its TSC, read between the two uptimes (after READY)
 *
 * The CLOCK line tells when the guest's clock (its uptime) began against its TSC. Under QEMU emulation (TCG) the
 * guest's TSC counts the host's TSC ticks from the moment QEMU first ran its vCPU (`cpu_enable_ticks` at the VM's
 * start), so `tsc / <host TSC rate> − uptime` is how long the guest ran before its clock began (the firmware, the
 * kernel's set-up before `tsc_early_init`, any ticks the clock lost before its TSC clocksource): time the uptimes
 * above do not count. `/bin/rdtsc` (test-template.ts `rdtscProgram`) prints it; TCG's RDMSR of the TSC reads 0, so
 * not the msr driver. After READY, so the lease's path is not changed by it.
 *
 * Peers: a user-data line `stacknet-ping: <name> [<name>...]` (also as a comment, `# stacknet-ping: ...`, so a
 * #cloud-config stays valid) makes the guest resolve each name through the DNS server its lease gave it (busybox
 * nslookup: its own resolver, so no NSS in the initramfs) and ping the address, retrying for up to 30 s while
 * the peer boots. The guests reaching each other by name is then on the console, like the rest.
 *
 * cloud-init's datasource finds the router as the DHCP server identifier (then the default gateway), reads
 * `http://<router>/latest/meta-data/` and each key it lists, `latest/user-data`, then asks `<router>:8080` with
 * `DomU_Request: send_my_password` and acknowledges a password with `DomU_Request: saved_password`, through wget
 * (cloudinit/sources/DataSourceCloudStack.py). Reference: /work/shared/reference/cloudstack.md §4.6–4.7.
 */

/**
 * The modules /init may load, in this order (test-template.ts adds their `depends=` first): the NIC's transport,
 * virtio-mmio (QEMU's microvm machine, its devices described by ACPI as LNRO0005) or virtio-pci (the PC machine),
 * each only when the guest has such a device (under emulation each insmod costs the guest tens of ms), then
 * virtio_net.
 */
export const testTemplateModules = ['virtio_mmio', 'virtio_pci', 'virtio_net'] as const;

/** `modules`: the .ko base names in load order (dependencies first), all under /lib/modules/ in the initramfs. */
export function testTemplateInit(modules: readonly string[]): string {
  return `#!/bin/busybox sh
# stacknet test template (src/hostagent/libvirt/test-template-init.ts). PID 1: it must never exit.
/bin/busybox mkdir -p /proc /sys /dev /etc /tmp /run /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The uptime read by the shell itself: under emulation every process the guest starts costs (a fork, an exec).
up() { read UP _ < /proc/uptime; }
up
echo "STACKNET-INIT uptime=$UP"
mmio=; for d in /sys/bus/acpi/devices/LNRO0005:*; do [ -e "$d" ] && mmio=1; break; done
pci=; for d in /sys/bus/pci/devices/*; do [ -e "$d" ] && pci=1; break; done
for m in ${modules.join(' ')}; do
  case $m in
    virtio_mmio) [ -n "$mmio" ] || continue ;;
    virtio_pci*) [ -n "$pci" ] || continue ;;
  esac
  insmod "/lib/modules/$m.ko" || echo "STACKNET-ERROR insmod $m"
done
ip link set lo up
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
ip link set eth0 up
up
echo "STACKNET-DHCP uptime=$UP"
# udhcpc stays in the foreground of its own background job: it renews the lease for as long as the guest runs.
udhcpc -i eth0 -s /etc/udhcpc.script -f -t 10 -T 1 -A 2 &
while [ ! -s /run/stacknet-lease ]; do sleep 0.05; done
read srv gw < /run/stacknet-lease
[ -n "$srv" ] || srv=$gw
get() { timeout 10 wget -q -O - "$@" 2>/dev/null; }
keys=''
n=0
while [ $n -lt 5 ]; do
  keys=$(get "http://$srv/latest/meta-data/") && break
  n=$((n + 1))
  sleep 1
done
[ -n "$keys" ] || echo "STACKNET-ERROR no metadata index from http://$srv/latest/meta-data/"
for k in $keys; do
  v=$(get "http://$srv/latest/meta-data/$k" | sed ':a;N;$!ba;s/\\n/\\\\n/g')
  echo "STACKNET-META $k=$v"
done
if get "http://$srv/latest/user-data" > /tmp/user-data; then
  echo "STACKNET-USERDATA $(base64 /tmp/user-data | tr -d '\\n')"
else
  echo "STACKNET-USERDATA "
fi
pw=$(get --header 'DomU_Request: send_my_password' "http://$srv:8080/")
case "$pw" in
  '' | saved_password) echo "STACKNET-PASSWORD " ;;
  bad_request) echo "STACKNET-ERROR password server: bad_request" ;;
  *)
    echo "STACKNET-PASSWORD $pw"
    get --header 'DomU_Request: saved_password' "http://$srv:8080/" > /dev/null
    ;;
esac
# Peers named in the user-data: resolved through the lease's DNS server, then pinged (see the file comment).
peers=$(sed -n 's/^[# ]*stacknet-ping:[[:space:]]*//p' /tmp/user-data 2>/dev/null)
for p in $peers; do
  ip='' res=fail n=0
  while [ $n -lt 30 ]; do
    ip=$(nslookup "$p" 2>/dev/null | sed -n '/^Name:/,$s/^Address[^:]*:[[:space:]]*\\([0-9][0-9]*\\.[0-9.]*\\).*/\\1/p' | head -n 1)
    if [ -n "$ip" ] && ping -c 1 -W 1 "$ip" > /dev/null 2>&1; then res=ok; break; fi
    n=$((n + 1))
    sleep 1
  done
  echo "STACKNET-PING name=$p ip=$ip $res"
done
up
echo "STACKNET-READY uptime=$UP"
up
u1=$UP
tsc=$(/bin/rdtsc)
up
echo "STACKNET-CLOCK tsc=$tsc uptime=$u1-$UP"
while :; do sleep 3600; done
`;
}

/**
 * udhcpc's script: configures eth0 from the lease (address, default route, resolv.conf, hostname). Few processes:
 * under emulation each costs the guest tens of ms, and udhcpc runs `deconfig` before its first DISCOVER, so a
 * first boot (no address yet: /run/stacknet-lease absent) skips its flush. The lease is reported once the address
 * and the default route are in place, before resolv.conf and the hostname (which /init reads later).
 */
export const testTemplateUdhcpcScript = `#!/bin/sh
# udhcpc calls this with deconfig | bound | renew | leasefail | nak and the lease in the environment.
case "$1" in
  deconfig)
    if [ -e /run/stacknet-lease ]; then
      ip -4 addr flush dev "$interface"
      ip link set "$interface" up
    fi
    ;;
  bound | renew)
    eval "$(ipcalc -p "$ip" "$subnet")"
    had=''
    [ -e /run/stacknet-lease ] && had=1
    if [ "$1" = bound ]; then
      [ -n "$had" ] && ip -4 addr flush dev "$interface"
      ip addr add "$ip/$PREFIX" dev "$interface"
    elif ! ip -4 addr show dev "$interface" | grep -q "inet $ip/$PREFIX "; then
      ip -4 addr flush dev "$interface"
      ip addr add "$ip/$PREFIX" dev "$interface"
    fi
    gw=''
    for r in $router; do gw=$r; break; done
    [ -n "$had" ] && ip route del default 2> /dev/null
    [ -n "$gw" ] && ip route add default via "$gw" dev "$interface"
    if [ "$1" = bound ]; then
      read up _ < /proc/uptime
      d=''
      for x in $dns; do d="\${d:+$d,}$x"; done
      echo "STACKNET-LEASE ip=$ip mask=$subnet router=$gw dns=$d hostname=$hostname"
      echo "STACKNET-TIMING lease=$up"
    fi
    {
      [ -n "$domain" ] && echo "search $domain"
      for d in $dns; do echo "nameserver $d"; done
    } > /etc/resolv.conf
    [ -n "$hostname" ] && hostname "$hostname"
    if [ "$1" = bound ]; then
      echo "$serverid $gw" > /run/stacknet-lease.new
      mv /run/stacknet-lease.new /run/stacknet-lease
    fi
    ;;
esac
exit 0
`;
