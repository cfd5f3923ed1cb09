/*
 * The host agent's 802.1Q tagger for kernels without CONFIG_VLAN_8021Q (src/hostagent/vlan-tagger.ts): a guest
 * VLAN's "sub-interface" `<label>.<vid>` is then one end of a veth pair whose other end `<label>t<vid>` is
 * joined to the traffic label by two cls_bpf filters, each running one of these programs:
 *
 *   <label>t<vid> ingress  vlan_tag    push the tag, then `action mirred egress redirect dev <label>`
 *   <label> ingress        vlan_untag  frames tagged <vid> only: pop the tag, then redirect to <label>t<vid>
 *
 * One object serves every VLAN: the VLAN id is the filter's `classid` (`classid 1:<vid in hex>`), which cls_bpf
 * stores in skb->tc_classid before it runs the program, in its default (not direct-action) mode too. Not
 * direct-action, so the filter's own action (mirred) runs when the program matches: a program returns -1 for
 * "matched, use the filter's classid and actions" and 0 for "no match, try the next filter". An untagged frame,
 * or one of another VLAN, does not match `vlan_untag` and goes on to the label's own stack (the underlay's
 * addresses and VXLAN keep working on a label that carries VLANs too).
 *
 * The kernel moves a received 802.1Q header into skb->vlan_tci (vlan_present) before tc's ingress hook, with or
 * without the 8021q module, so the untagger reads the metadata and pops it (the tag a redirected frame carries
 * is put back on the wire by the device, or by software when it has no VLAN offload).
 *
 * No headers: the few __sk_buff fields are declared here, in the kernel's order (uapi/linux/bpf.h), and the two
 * helpers by their ids. Built by the agent with `clang -O2 -target bpf -c vlan-tagger.c -o <cache>.o`.
 */
typedef unsigned int __u32;
typedef unsigned short __u16;

/* The head of struct __sk_buff up to tc_classid; the verifier rewrites these field reads into the real skb's. */
struct __sk_buff {
  __u32 len, pkt_type, mark, queue_mapping, protocol, vlan_present, vlan_tci, vlan_proto, priority,
      ingress_ifindex, ifindex, tc_index, cb[5], hash, tc_classid;
};

/* BPF_FUNC_skb_vlan_push = 18, BPF_FUNC_skb_vlan_pop = 19 (stable uapi ids). */
static long (*skb_vlan_push)(struct __sk_buff *, __u16 proto_be, __u16 tci) = (void *)18;
static long (*skb_vlan_pop)(struct __sk_buff *) = (void *)19;

/* htons(ETH_P_8021Q): bpf_skb_vlan_push takes the protocol in network order (`-target bpf` is the host's order). */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ETH_P_8021Q_BE 0x0081
#else
#define ETH_P_8021Q_BE 0x8100
#endif
#define VID(skb) ((skb)->tc_classid & 0xfff)

/* Frames leaving the VLAN (the bridge sent them out of <label>.<vid>): tag them with the filter's VLAN id. */
__attribute__((section("vlan_tag"), used)) int tag(struct __sk_buff *skb) {
  /* Priority bits left 0, as an 802.1Q sub-interface without egress-qos-map does. */
  if (skb_vlan_push(skb, ETH_P_8021Q_BE, VID(skb)) != 0) return 0; /* not tagged: not sent to the trunk */
  return -1;
}

/* Frames arriving on the label: those of this filter's VLAN lose their tag and go to the VLAN's veth. */
__attribute__((section("vlan_untag"), used)) int untag(struct __sk_buff *skb) {
  if (!skb->vlan_present || (skb->vlan_tci & 0xfff) != VID(skb)) return 0;
  if (skb_vlan_pop(skb) != 0) return 0;
  return -1;
}

/* The helpers used are GPL-only. */
char _license[] __attribute__((section("license"), used)) = "GPL";
