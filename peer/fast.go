package peer

import (
	"crypto/sha1"
	"encoding/binary"
	"net/netip"
)

// AllowedFastSet returns the k pieces (BEP 6 "allowed fast") a peer at ip
// may request from us while we choke it, for a torrent of numPieces
// pieces: the canonical set, derived from the peer's /24 network and the
// info hash, so a peer cannot collect more by reconnecting from its
// network. It returns nil for IPv6 addresses, for which BEP 6 defines no
// set, and when k is not less than numPieces.
func AllowedFastSet(ip netip.Addr, infoHash [20]byte, numPieces, k int) []uint32 {
	ip = ip.Unmap()
	if !ip.Is4() || k <= 0 || k >= numPieces {
		return nil
	}
	a4 := ip.As4()
	var x [24]byte
	copy(x[:3], a4[:3]) // the address masked to its /24: the 4th byte stays 0
	copy(x[4:], infoHash[:])
	h := sha1.Sum(x[:])
	set := make([]uint32, 0, k)
	for {
		for j := 0; j < 5 && len(set) < k; j++ {
			index := binary.BigEndian.Uint32(h[4*j:]) % uint32(numPieces)
			if !contains(set, index) {
				set = append(set, index)
			}
		}
		if len(set) == k {
			return set
		}
		h = sha1.Sum(h[:])
	}
}

func contains(s []uint32, v uint32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
