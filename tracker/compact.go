package tracker

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Sizes of a compact peer (BEP 23, BEP 7): address then big-endian port.
const (
	CompactV4Len = 6
	CompactV6Len = 18
)

// ParseCompact decodes a compact peer list whose entries are size bytes
// (CompactV4Len or CompactV6Len), keeping at most max peers and skipping
// entries with port 0 or an unspecified address.
func ParseCompact(b []byte, size, max int) ([]netip.AddrPort, error) {
	if size != CompactV4Len && size != CompactV6Len {
		return nil, fmt.Errorf("compact peers: bad entry size %d", size)
	}
	if len(b)%size != 0 {
		return nil, fmt.Errorf("compact peers: %d bytes is not a multiple of %d: %w", len(b), size, ErrBadReply)
	}
	n := min(len(b)/size, max)
	peers := make([]netip.AddrPort, 0, n)
	for i := 0; i+size <= len(b) && len(peers) < max; i += size {
		var ip netip.Addr
		if size == CompactV4Len {
			ip = netip.AddrFrom4([4]byte(b[i : i+4]))
		} else {
			ip = netip.AddrFrom16([16]byte(b[i : i+16])).Unmap()
		}
		port := binary.BigEndian.Uint16(b[i+size-2:])
		if port == 0 || ip.IsUnspecified() {
			continue
		}
		peers = append(peers, netip.AddrPortFrom(ip, port))
	}
	return peers, nil
}

// AppendCompact appends the compact form of the peers of one family: IPv4
// peers (6 bytes each) when v6 is false, IPv6 peers (18 bytes) when true.
// Peers of the other family are left out.
func AppendCompact(b []byte, peers []netip.AddrPort, v6 bool) []byte {
	for _, p := range peers {
		a := p.Addr().Unmap()
		switch {
		case !v6 && a.Is4():
			ip := a.As4()
			b = append(b, ip[:]...)
		case v6 && a.Is6():
			ip := a.As16()
			b = append(b, ip[:]...)
		default:
			continue
		}
		b = binary.BigEndian.AppendUint16(b, p.Port())
	}
	return b
}
