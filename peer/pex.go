package peer

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/aiotorrent/aiotorrent/bencode"
)

// PEXFlags are what a ut_pex message says about a peer it adds (BEP 11
// "added.f" and "added6.f", one byte per peer). Bits BEP 11 does not
// define are reserved; ParsePEX keeps them as sent.
type PEXFlags uint8

// The flags BEP 11 defines.
const (
	// PEXEncryption: the peer prefers encrypted connections (it sent
	// "e" in its extension handshake).
	PEXEncryption PEXFlags = 0x01
	// PEXSeed: the peer is a seed, or upload only (BEP 21).
	PEXSeed PEXFlags = 0x02
	// PEXUTP: the peer supports uTP (BEP 29). Its absence says nothing.
	PEXUTP PEXFlags = 0x04
	// PEXHolepunch: the peer supports ut_holepunch (BEP 55), so the
	// sender can relay a hole punch to it.
	PEXHolepunch PEXFlags = 0x08
	// PEXReachable: the sender's connection to the peer is outgoing, so
	// the peer accepts incoming connections.
	PEXReachable PEXFlags = 0x10
)

var pexFlagNames = [...]string{"encryption", "seed", "utp", "holepunch", "reachable"}

// String returns the flags set in f by name, joined by "|" ("seed|utp"),
// reserved bits as a hexadecimal number; "0" if none is set.
func (f PEXFlags) String() string {
	if f == 0 {
		return "0"
	}
	var names []string
	for i, name := range pexFlagNames {
		if f&(1<<i) != 0 {
			names = append(names, name)
		}
	}
	if rest := f &^ (1<<len(pexFlagNames) - 1); rest != 0 {
		names = append(names, fmt.Sprintf("%#02x", uint8(rest)))
	}
	return strings.Join(names, "|")
}

// PEXPeer is a peer a ut_pex message adds: its address and what the
// sender says about it.
type PEXPeer struct {
	Addr  netip.AddrPort
	Flags PEXFlags
}

// PEXMsg is a ut_pex message (BEP 11): the peers the sender has connected
// to and disconnected from since its last message to us (the first
// message lists all its peers). It is the payload of an Extended message
// sent under the id the receiver gave ExtPEX in its extension handshake.
//
// Both families are in one list each: IPv4 peers are "added" and
// "dropped" on the wire, IPv6 peers "added6" and "dropped6".
type PEXMsg struct {
	Added   []PEXPeer
	Dropped []netip.AddrPort
}

// MaxPEXPeers bounds how many addresses of each family (IPv4, IPv6)
// ParsePEX returns in each list of a message (Added, Dropped): at most
// 4 × MaxPEXPeers addresses in all. Entries past it are ignored, not an
// error.
//
// BEP 11 sets no limit. µTorrent and Azureus agreed on at most 50 added
// and 50 dropped per message, both families together; Transmission
// sends at most 50 of each family and keeps at most 50 added of each.
// libtorrent (qBittorrent, Deluge) sends up to 100 added, both families
// together, but every peer dropped since its last message, which on a
// busy torrent can be more. The bound is twice libtorrent's added, so
// that nothing a well-behaved client sends is cut, and it keeps what a
// caller handles per message small whatever the sender packs into the
// MaxExtendedLen payload (up to ~10,900 IPv4 entries). Cutting rather
// than failing follows Transmission, and spares a peer whose dropped
// list ran long.
const MaxPEXPeers = 200

// Compact entry sizes (BEP 23): address then port, big-endian.
const (
	pexEntryLen4 = 4 + 2
	pexEntryLen6 = 16 + 2
)

// pexDict is the dictionary of a ut_pex message, each known key as its
// raw value.
type pexDict struct {
	Added    bencode.RawMessage `bencode:"added"`
	AddedF   bencode.RawMessage `bencode:"added.f"`
	Added6   bencode.RawMessage `bencode:"added6"`
	Added6F  bencode.RawMessage `bencode:"added6.f"`
	Dropped  bencode.RawMessage `bencode:"dropped"`
	Dropped6 bencode.RawMessage `bencode:"dropped6"`
}

// ParsePEX parses a ut_pex message.
//
// The payload must be one bencoded dictionary of at most MaxExtendedLen
// bytes, nested at most 8 deep, with no key twice and nothing after it,
// and each of "added" and "dropped" (IPv4, 6 bytes an entry) and
// "added6" and "dropped6" (IPv6, 18 bytes an entry) that is present must
// be a string of whole entries: anything else is an error wrapping
// ErrBadMessage, and a zero PEXMsg. Unknown keys are skipped.
//
// What is returned are peers, not entries:
//   - an entry that cannot be a peer is left out: port 0, and the
//     unspecified, multicast and broadcast (255.255.255.255) addresses;
//   - an IPv4-mapped IPv6 address is returned as IPv4;
//   - an address listed again, in either family's list (once unmapped),
//     is kept once, the first time, with the flags sent with it then;
//   - Added and Dropped each keep the first MaxPEXPeers IPv4 and the
//     first MaxPEXPeers IPv6 addresses and ignore the rest;
//   - Added and Dropped list IPv4 addresses first, then IPv6, each in the
//     order sent.
//
// Addresses that are peers but perhaps not ones we can reach (loopback,
// private, link-local) are kept: whether to try them depends on where the
// sender is, which the caller knows. Nor is a peer both added and dropped
// in one message reconciled.
//
// Flags are optional. If "added.f" ("added6.f") is absent, not a string,
// or not one byte per entry of "added" ("added6") — entries left out
// included — the peers are kept with no flags. libtorrent would drop
// such a list of peers whole; Transmission keeps the peers when the
// flags are absent, as here. libtorrent, Transmission, aria2 and
// anacrolix/torrent all send one flag byte per entry, so this only
// matters for a broken or unknown sender, and the flags are hints (a
// seed, uTP) a caller can do without: losing the peers would cost more.
func ParsePEX(payload []byte) (PEXMsg, error) {
	if len(payload) > MaxExtendedLen {
		return PEXMsg{}, bad("ut_pex message of %d bytes", len(payload))
	}
	if len(payload) == 0 || payload[0] != 'd' {
		return PEXMsg{}, bad("ut_pex message is not a dictionary")
	}
	var d pexDict
	if err := extDecoder.Unmarshal(payload, &d); err != nil {
		return PEXMsg{}, fmt.Errorf("%w: ut_pex message: %w", ErrBadMessage, err)
	}
	added, err := pexEntries(d.Added, "added", pexEntryLen4)
	if err != nil {
		return PEXMsg{}, err
	}
	added6, err := pexEntries(d.Added6, "added6", pexEntryLen6)
	if err != nil {
		return PEXMsg{}, err
	}
	dropped, err := pexEntries(d.Dropped, "dropped", pexEntryLen4)
	if err != nil {
		return PEXMsg{}, err
	}
	dropped6, err := pexEntries(d.Dropped6, "dropped6", pexEntryLen6)
	if err != nil {
		return PEXMsg{}, err
	}

	var m PEXMsg
	var a pexKept[PEXPeer]
	a.addAll(added, pexEntryLen4, pexFlagBytes(d.AddedF, len(added)/pexEntryLen4), newPEXPeer)
	a.addAll(added6, pexEntryLen6, pexFlagBytes(d.Added6F, len(added6)/pexEntryLen6), newPEXPeer)
	m.Added = a.list()
	var dr pexKept[netip.AddrPort]
	dr.addAll(dropped, pexEntryLen4, nil, newPEXDropped)
	dr.addAll(dropped6, pexEntryLen6, nil, newPEXDropped)
	m.Dropped = dr.list()
	return m, nil
}

// pexEntries returns the compact entries of the list raw holds, nil if
// it is absent: an error if it is not a string of whole entries of size
// bytes.
func pexEntries(raw bencode.RawMessage, key string, size int) ([]byte, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	b, ok := rawBytes(raw)
	if !ok {
		return nil, bad("ut_pex %q is not a string", key)
	}
	if len(b)%size != 0 {
		return nil, bad("ut_pex %q of %d bytes, not entries of %d", key, len(b), size)
	}
	return b, nil
}

// pexFlagBytes returns the flags raw holds if it is a string of n bytes,
// else nil.
func pexFlagBytes(raw bencode.RawMessage, n int) []byte {
	if b, ok := rawBytes(raw); ok && len(b) == n {
		return b
	}
	return nil
}

func newPEXPeer(a netip.AddrPort, f PEXFlags) PEXPeer           { return PEXPeer{Addr: a, Flags: f} }
func newPEXDropped(a netip.AddrPort, _ PEXFlags) netip.AddrPort { return a }

// pexKept collects the peers of one list of a message, both families,
// as ParsePEX documents: filtered, unmapped, once each, bounded.
type pexKept[T any] struct {
	v4, v6 []T
	seen   map[netip.AddrPort]struct{}
}

// addAll adds the peers of entries, compact entries of size bytes, with
// flags[i] for entry i if flags is not nil.
func (k *pexKept[T]) addAll(entries []byte, size int, flags []byte, mk func(netip.AddrPort, PEXFlags) T) {
	for i := 0; i+size <= len(entries); i += size {
		e := entries[i : i+size]
		ip, _ := netip.AddrFromSlice(e[:size-2])
		ap := netip.AddrPortFrom(ip.Unmap(), binary.BigEndian.Uint16(e[size-2:]))
		if !isPEXPeer(ap) {
			continue
		}
		list := &k.v6
		if ap.Addr().Is4() {
			list = &k.v4
		}
		if len(*list) >= MaxPEXPeers {
			continue
		}
		if _, dup := k.seen[ap]; dup {
			continue
		}
		if k.seen == nil {
			k.seen = make(map[netip.AddrPort]struct{})
		}
		k.seen[ap] = struct{}{}
		var f PEXFlags
		if flags != nil {
			f = PEXFlags(flags[i/size])
		}
		*list = append(*list, mk(ap, f))
	}
}

// list returns the IPv4 peers then the IPv6 ones; nil if there are none.
func (k *pexKept[T]) list() []T {
	if len(k.v6) == 0 {
		return k.v4
	}
	return append(k.v4, k.v6...)
}

var ipv4Broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// isPEXPeer reports whether ap, unmapped, can be a peer's address.
func isPEXPeer(ap netip.AddrPort) bool {
	a := ap.Addr()
	return ap.Port() != 0 && a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && a != ipv4Broadcast
}

// AppendPEX appends m in bencode to b, keys sorted: the payload of a
// ut_pex message, which the caller sends under the id the peer gave
// ExtPEX.
//
// IPv4 addresses (IPv4-mapped ones included, written as IPv4) go in
// "added", with their flags in "added.f", and "dropped"; IPv6 ones in
// "added6", "added6.f" and "dropped6". "added", "added.f" and "dropped"
// are always written, if empty as empty strings, the IPv6 keys only when
// they have an address. That is what libtorrent (which writes all six
// keys), aria2 and anacrolix/torrent always write; Transmission writes
// only non-empty keys. None of these needs any key to be present, but
// Transmission's notes report µTorrent 1.8.1 disconnecting over an
// empty PEX message, and this one always has the IPv4 keys. Better
// still, send no message when nothing changed, as µTorrent and
// libtorrent do.
//
// Addresses are written as given, in order, but for invalid ones (the
// zero netip.AddrPort), which are left out: AppendPEX does not filter,
// deduplicate or bound them the way ParsePEX does. Keep a message to
// what peers expect: no more than 50 added and 50 dropped, by the
// convention µTorrent, Azureus and Transmission follow.
func AppendPEX(b []byte, m PEXMsg) []byte {
	var added4, added6, dropped4, dropped6 int
	for _, p := range m.Added {
		switch pexFamily(p.Addr.Addr()) {
		case 4:
			added4++
		case 6:
			added6++
		}
	}
	for _, a := range m.Dropped {
		switch pexFamily(a.Addr()) {
		case 4:
			dropped4++
		case 6:
			dropped6++
		}
	}
	b = append(b, 'd')
	b = appendPEXAdded(b, "added", m.Added, 4, added4)
	if added6 > 0 {
		b = appendPEXAdded(b, "added6", m.Added, 6, added6)
	}
	b = appendBString(b, "dropped")
	b = appendPEXAddrs(b, m.Dropped, 4, dropped4)
	if dropped6 > 0 {
		b = appendBString(b, "dropped6")
		b = appendPEXAddrs(b, m.Dropped, 6, dropped6)
	}
	return append(b, 'e')
}

// pexFamily returns 4 for an IPv4 address (IPv4-mapped included), 6 for
// an IPv6 one, 0 for the zero Addr.
func pexFamily(a netip.Addr) int {
	switch {
	case a.Unmap().Is4():
		return 4
	case a.Is6():
		return 6
	}
	return 0
}

// appendPEXAdded appends key and the n peers of family in peers, then
// key+".f" and their flags.
func appendPEXAdded(b []byte, key string, peers []PEXPeer, family, n int) []byte {
	b = appendBString(b, key)
	b = appendPEXLen(b, n, family)
	for _, p := range peers {
		if pexFamily(p.Addr.Addr()) == family {
			b = appendPEXEntry(b, p.Addr)
		}
	}
	b = appendBString(b, key+".f")
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, ':')
	for _, p := range peers {
		if pexFamily(p.Addr.Addr()) == family {
			b = append(b, byte(p.Flags))
		}
	}
	return b
}

// appendPEXAddrs appends the n addresses of family in addrs as one
// string of compact entries.
func appendPEXAddrs(b []byte, addrs []netip.AddrPort, family, n int) []byte {
	b = appendPEXLen(b, n, family)
	for _, a := range addrs {
		if pexFamily(a.Addr()) == family {
			b = appendPEXEntry(b, a)
		}
	}
	return b
}

// appendPEXLen appends the length prefix of a string of n entries of
// family.
func appendPEXLen(b []byte, n, family int) []byte {
	size := pexEntryLen4
	if family == 6 {
		size = pexEntryLen6
	}
	b = strconv.AppendInt(b, int64(n*size), 10)
	return append(b, ':')
}

// appendPEXEntry appends a in compact form: 4 bytes of address if it is
// IPv4 or IPv4-mapped, else 16, then the port.
func appendPEXEntry(b []byte, a netip.AddrPort) []byte {
	if ip := a.Addr().Unmap(); ip.Is4() {
		ip4 := ip.As4()
		b = append(b, ip4[:]...)
	} else {
		ip16 := ip.As16()
		b = append(b, ip16[:]...)
	}
	return binary.BigEndian.AppendUint16(b, a.Port())
}
