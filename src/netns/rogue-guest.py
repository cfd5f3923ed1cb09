#!/usr/bin/python3
"""A guest that acts as a rogue server, run INSIDE a guest namespace by tests (rogue-guest.ts starts it).

Frames are built by hand and sent on a packet socket, so the test decides everything a hostile guest could:
the UDP source port, VLAN tags (802.1Q/802.1ad, priority-tagged VID 0 included), the source addresses.
One JSON object per stdout line: {"ready": true} once listening, then one line per frame sent.

  dhcp4 --iface I --mac M --ip IP --offer IP [--sport N] [--tags 0,0] [--tpid 0x8100]
        answers every DISCOVER with an OFFER and every REQUEST with an ACK of --offer, naming itself as
        server, gateway and DNS server, broadcast to UDP 68 from --sport
  ra    --iface I --mac M --prefix 2001:db8:bad:: [--count N] [--interval S]
        router advertisements from its link-local address to ff02::1 (prefix for SLAAC, default router)
  udp6  --iface I --mac M --dst fe80::... --dport 546 [--sport 547] [--count N]
        UDP datagrams from its link-local address (a DHCPv6 server's Advertise, relay traffic)
  icmp  --iface I --mac M --kind redirect4|redirect6 --dst ADDR --dstmac M --src ADDR --gateway ADDR
        [--target ADDR] [--count N]
        ICMP(v6) redirects to --dst from --src (spoofed if it likes): "reach --target through --gateway"
"""
import argparse
import ipaddress
import json
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SO_BINDTODEVICE = 25


def out(o):
    sys.stdout.write(json.dumps(o) + "\n")
    sys.stdout.flush()


def mac_bytes(mac):
    return bytes(int(x, 16) for x in mac.split(":"))


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def link_local(mac):
    b = bytearray(mac_bytes(mac))
    b[0] ^= 0x02
    return ipaddress.IPv6Address(b"\xfe\x80" + b"\0" * 6 + bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:]))


def ether(dst, src, ethertype, payload, tags=(), tpid=0x8100):
    hdr = mac_bytes(dst) + mac_bytes(src)
    for vid in tags:
        hdr += struct.pack("!HH", tpid, vid & 0x0FFF)
    return hdr + struct.pack("!H", ethertype) + payload


def ipv4(src, dst, proto, payload, ttl=64):
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, ttl, proto, 0, s, d)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def udp4(src, dst, sport, dport, data):
    length = 8 + len(data)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, length)
    u = struct.pack("!HHHH", sport, dport, length, 0) + data
    c = csum(pseudo + u) or 0xFFFF
    return u[:6] + struct.pack("!H", c) + u[8:]


def ipv6(src, dst, nh, payload, hlim=255):
    return (
        struct.pack("!IHBB", 0x60000000, len(payload), nh, hlim)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + payload
    )


def l4_6(src, dst, nh, body, csum_at):
    pseudo = (
        ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + struct.pack("!IxxxB", len(body), nh)
    )
    c = csum(pseudo + body) or 0xFFFF
    return body[:csum_at] + struct.pack("!H", c) + body[csum_at + 2 :]


def mcast_mac(addr):
    a = ipaddress.IPv6Address(addr).packed
    return "33:33:" + ":".join("%02x" % x for x in a[12:])


def packet_socket(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    return s


def dhcp4(a):
    raw = packet_socket(a.iface)
    lst = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    lst.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, a.iface.encode())
    lst.bind(("0.0.0.0", 67))
    tags = [int(x) for x in a.tags.split(",") if x != ""]
    out({"ready": True})
    while True:
        msg, _ = lst.recvfrom(4096)
        if len(msg) < 240 or msg[0] != 1 or msg[236:240] != b"\x63\x82\x53\x63":
            continue
        xid, chaddr = msg[4:8], msg[28:34]
        mtype, o = None, 240
        while o < len(msg):
            code = msg[o]
            if code == 255:
                break
            if code == 0:
                o += 1
                continue
            ln = msg[o + 1]
            if code == 53:
                mtype = msg[o + 2]
            o += 2 + ln
        reply = {1: 2, 3: 5}.get(mtype)  # DISCOVER -> OFFER, REQUEST -> ACK
        if reply is None:
            continue
        me = socket.inet_aton(a.ip)
        body = bytearray(236)
        body[0], body[1], body[2] = 2, 1, 6
        body[4:8] = xid
        body[10:12] = msg[10:12]
        body[16:20] = socket.inet_aton(a.offer)
        body[20:24] = me
        body[28:34] = chaddr
        opts = b"\x63\x82\x53\x63"
        opts += bytes([53, 1, reply]) + bytes([54, 4]) + me + bytes([51, 4]) + struct.pack("!I", 3600)
        opts += bytes([1, 4]) + socket.inet_aton("255.255.255.0") + bytes([3, 4]) + me + bytes([6, 4]) + me
        opts += b"\xff"
        data = bytes(body) + opts
        frame = ether(
            "ff:ff:ff:ff:ff:ff",
            a.mac,
            0x0800,
            ipv4(a.ip, "255.255.255.255", 17, udp4(a.ip, "255.255.255.255", a.sport, 68, data)),
            tags,
            int(a.tpid, 0),
        )
        raw.send(frame)
        out({"sent": {2: "offer", 5: "ack"}[reply], "xid": xid.hex(), "chaddr": chaddr.hex(":")})


def ra(a):
    raw = packet_socket(a.iface)
    src = str(link_local(a.mac))
    prefix = ipaddress.IPv6Address(a.prefix).packed
    # hop limit 64, flags 0, router lifetime 1800 s, reachable 0, retrans 0
    body = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
    # prefix information: /64, on-link + autonomous, valid/preferred 3600 s
    body += struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 3600, 3600, 0) + prefix
    body += struct.pack("!BB", 1, 1) + mac_bytes(a.mac)  # source link-layer address
    body = l4_6(src, "ff02::1", 58, body, 2)
    frame = ether("33:33:00:00:00:01", a.mac, 0x86DD, ipv6(src, "ff02::1", 58, body), [], 0x8100)
    out({"ready": True})
    for _ in range(a.count):
        raw.send(frame)
        out({"sent": "ra", "src": src})
        time.sleep(a.interval)


def udp6(a):
    raw = packet_socket(a.iface)
    src = str(link_local(a.mac))
    data = b"\x02" + b"\x12\x34\x56" + b"rogue"  # DHCPv6 Advertise, made-up transaction
    body = struct.pack("!HHHH", a.sport, a.dport, 8 + len(data), 0) + data
    body = l4_6(src, a.dst, 17, body, 6)
    frame = ether(a.dstmac, a.mac, 0x86DD, ipv6(src, a.dst, 17, body, 64), [], 0x8100)
    out({"ready": True})
    for _ in range(a.count):
        raw.send(frame)
        out({"sent": "udp6", "sport": a.sport, "dport": a.dport})
        time.sleep(a.interval)


def icmp(a):
    raw = packet_socket(a.iface)
    out({"ready": True})
    for _ in range(a.count):
        if a.kind == "redirect4":
            inner = ipv4(a.dst, "192.0.2.1", 17, udp4(a.dst, "192.0.2.1", 1000, 53, b""))
            body = struct.pack("!BBH4s", 5, 1, 0, socket.inet_aton(a.gateway)) + inner[:28]
            body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
            frame = ether(a.dstmac, a.mac, 0x0800, ipv4(a.src, a.dst, 1, body), [], 0x8100)
        else:
            body = struct.pack("!BBHI", 137, 0, 0, 0)
            # target (the next hop it claims), destination, and the target's link-layer address
            body += ipaddress.IPv6Address(a.gateway).packed + ipaddress.IPv6Address(a.target).packed
            body += struct.pack("!BB", 2, 1) + mac_bytes(a.mac)
            body = l4_6(a.src, a.dst, 58, body, 2)
            frame = ether(a.dstmac, a.mac, 0x86DD, ipv6(a.src, a.dst, 58, body), [], 0x8100)
        raw.send(frame)
        out({"sent": a.kind})
        time.sleep(a.interval)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["dhcp4", "ra", "udp6", "icmp"])
    p.add_argument("--iface", default="eth0")
    p.add_argument("--mac", required=True)
    p.add_argument("--ip")
    p.add_argument("--offer")
    p.add_argument("--sport", type=int, default=1067)
    p.add_argument("--dport", type=int, default=546)
    p.add_argument("--tags", default="")
    p.add_argument("--tpid", default="0x8100")
    p.add_argument("--prefix", default="2001:db8:bad::")
    p.add_argument("--dst")
    p.add_argument("--dstmac", default="ff:ff:ff:ff:ff:ff")
    p.add_argument("--src")
    p.add_argument("--gateway")
    p.add_argument("--target", default="2001:db8::53")
    p.add_argument("--kind", choices=["redirect4", "redirect6"])
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--interval", type=float, default=0.2)
    a = p.parse_args()
    {"dhcp4": dhcp4, "ra": ra, "udp6": udp6, "icmp": icmp}[a.mode](a)


if __name__ == "__main__":
    main()
