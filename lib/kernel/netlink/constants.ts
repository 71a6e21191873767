/**
 * Numeric rtnetlink constants, each named as in the kernel's UAPI header it comes from.
 * Values are ABI: they never change, so they are written out instead of read from headers.
 */

// <sys/socket.h>, <linux/netlink.h>
export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const NETLINK_ROUTE = 0;

// <linux/netlink.h>: message types and header flags
export const NLMSG_HDRLEN = 16;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 0x01;
export const NLM_F_MULTI = 0x02;
export const NLM_F_ACK = 0x04;
export const NLM_F_ECHO = 0x08;
export const NLM_F_DUMP = 0x300; // NLM_F_ROOT | NLM_F_MATCH
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
/** In an NLMSG_ERROR reply: the echoed request was cut to its header (NETLINK_CAP_ACK). */
export const NLM_F_CAPPED = 0x100;
/** In an NLMSG_ERROR reply: extended-ack TLVs follow the echoed request. */
export const NLM_F_ACK_TLVS = 0x200;
/** enum nlmsgerr_attrs */
export const NLMSGERR_ATTR_MSG = 1;
export const NLMSGERR_ATTR_OFFS = 2;

// <linux/netlink.h>: struct nlattr
export const NLA_HDRLEN = 4;
export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

// <linux/rtnetlink.h>: message types
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;
export const RTM_NEWNEIGH = 28;
export const RTM_DELNEIGH = 29;
export const RTM_GETNEIGH = 30;

// <linux/if.h>
export const IFF_UP = 0x1;

// <linux/if_link.h>: enum IFLA_*
export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_LINK = 5;
export const IFLA_MASTER = 10;
export const IFLA_PROTINFO = 12;
export const IFLA_LINKINFO = 18;
export const IFLA_IFALIAS = 20;
export const IFLA_NET_NS_FD = 28;
export const IFLA_EXT_MASK = 29;
export const IFLA_LINK_NETNSID = 37;
/** IFLA_LINKINFO nested: enum IFLA_INFO_* */
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
/** IFLA_PROTINFO nested (AF_BRIDGE): enum IFLA_BRPORT_*; MODE is the hairpin flag */
export const IFLA_BRPORT_MODE = 4;
export const IFLA_BRPORT_ISOLATED = 33;
// <linux/rtnetlink.h>: IFLA_EXT_MASK value that keeps link dumps small
export const RTEXT_FILTER_SKIP_STATS = 1 << 3;

// <linux/veth.h>
export const VETH_INFO_PEER = 1;

// <linux/if_link.h>: IFLA_INFO_DATA of a vxlan link, enum IFLA_VXLAN_*
export const IFLA_VXLAN_ID = 1;
export const IFLA_VXLAN_LINK = 3;
export const IFLA_VXLAN_LOCAL = 4;
export const IFLA_VXLAN_LEARNING = 7;
export const IFLA_VXLAN_PROXY = 11;
export const IFLA_VXLAN_L2MISS = 13;
export const IFLA_VXLAN_L3MISS = 14;
/** UDP destination port, a 16-bit value in network byte order (the only big-endian IFLA_VXLAN_*). */
export const IFLA_VXLAN_PORT = 15;
export const IFLA_VXLAN_LOCAL6 = 17;
/** VNIs are 24 bits (VXLAN_N_VID). */
export const VXLAN_N_VID = 1 << 24;

// <linux/if_addr.h>
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_FLAGS = 8;
export const IFA_F_NODAD = 0x02;
export const IFA_F_PERMANENT = 0x80;

// <linux/rtnetlink.h>: struct rtmsg fields and enum rtattr_type_t
export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const RTA_TABLE = 15;
export const RT_TABLE_UNSPEC = 0;
export const RT_TABLE_MAIN = 254;
export const RTPROT_STATIC = 4;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RTN_UNICAST = 1;

// <linux/neighbour.h>: for neighbour / FDB entries (overlay)
export const NDA_DST = 1;
export const NDA_LLADDR = 2;
export const NDA_VNI = 7;
export const NDA_IFINDEX = 8;
export const NDA_MASTER = 9;
/** NUD_NOARP on a bridge FDB entry: "static" (never ages, forwarded to the port). */
export const NUD_NOARP = 0x40;
/** NUD_PERMANENT: a neighbour that never ages; on a *bridge* FDB entry it means "local" (the
 * frame is delivered to the bridge itself, not forwarded), so bridge entries use NUD_NOARP. */
export const NUD_PERMANENT = 0x80;
export const NTF_SELF = 0x02;
export const NTF_MASTER = 0x04;

// <asm-generic/errno-base.h>, <asm-generic/errno.h>: the errnos trellis reacts to
export const ENOENT = 2;
export const ESRCH = 3;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;
export const EOPNOTSUPP = 95;
export const EADDRNOTAVAIL = 99;
