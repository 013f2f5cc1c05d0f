package peer

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"

	"github.com/aiotorrent/aiotorrent/bencode"
)

// Names of the extensions (BEP 10 "m" keys) this package has codecs for.
const (
	ExtMetadata = "ut_metadata" // BEP 9 metadata exchange
	ExtPEX      = "ut_pex"      // BEP 11 peer exchange
)

// ExtHandshakeID is the extended message id of the extension handshake
// itself (BEP 10); other ids are the ones each side lists in its "m".
const ExtHandshakeID = 0

// maxExtDepth bounds the nesting of an extension message's dictionary.
// The deepest key any BEP defines is one level down ("m"); the slack is
// for unknown keys, which are skipped.
const maxExtDepth = 8

// ExtHandshake is the dictionary of a BEP 10 extension handshake: the
// extended message with id 0 each side sends once (or again, to change
// it) after the BitTorrent handshake when both set the extension bit.
//
// ParseExtHandshake fills only what the peer sent well formed; a zero
// field means absent (or ignored, see ParseExtHandshake). Append writes
// the non-zero fields back.
type ExtHandshake struct {
	// M maps the name of each extension the sender supports to the
	// extended message id it wants to receive that extension's messages
	// under, 1 to 255; 0 means the extension is disabled (in a handshake
	// sent again to turn an extension off).
	M map[string]int

	// V is the sender's client name and version ("v"), as sent: it is
	// not checked to be UTF-8 or printable.
	V string

	// P is the sender's TCP listen port ("p"), 1 to 65535.
	P int

	// Reqq is how many outstanding requests the sender queues before
	// dropping them ("reqq"), 1 to math.MaxInt32.
	Reqq int

	// MetadataSize is the size in bytes of the torrent's info dictionary
	// (BEP 9 "metadata_size"), 1 to MaxMetadataSize; 0 if the sender
	// did not send one, sent 0 (it has no metadata), or sent one out of
	// range (then BadMetadataSize holds it).
	MetadataSize int64

	// BadMetadataSize is a "metadata_size" the sender gave outside 1 to
	// MaxMetadataSize (negative, or absurdly large), or 0. A peer that
	// claims such a size is not exchanging metadata we are willing to
	// hold: do not request metadata from it, but there is no need to
	// drop the connection for it. Append does not write it.
	BadMetadataSize int64

	// UploadOnly reports that the sender is only uploading, as a seed
	// or a partial seed (BEP 21 "upload_only").
	UploadOnly bool

	// YourIP is the address the sender sees us at ("yourip"), unmapped:
	// an IPv4 address sent as 16 bytes is returned as IPv4.
	YourIP netip.Addr

	// IPv4 and IPv6 are the sender's own addresses ("ipv4", 4 bytes, and
	// "ipv6", 16 bytes), if it told them.
	IPv4 netip.Addr
	IPv6 netip.Addr
}

// extHandshakeDict is the shape ParseExtHandshake decodes first: each
// known key as its raw value, so that a key of the wrong type can be
// ignored on its own instead of failing the whole dictionary.
type extHandshakeDict struct {
	M            bencode.RawMessage `bencode:"m"`
	V            bencode.RawMessage `bencode:"v"`
	P            bencode.RawMessage `bencode:"p"`
	Reqq         bencode.RawMessage `bencode:"reqq"`
	MetadataSize bencode.RawMessage `bencode:"metadata_size"`
	UploadOnly   bencode.RawMessage `bencode:"upload_only"`
	YourIP       bencode.RawMessage `bencode:"yourip"`
	IPv4         bencode.RawMessage `bencode:"ipv4"`
	IPv6         bencode.RawMessage `bencode:"ipv6"`
}

// extDecoder decodes extension messages: no larger than an extended
// message may be, no deeper than maxExtDepth, keys in any order (clients
// do not all sort them) but never twice.
var extDecoder = bencode.Decoder{MaxDepth: maxExtDepth, MaxSize: MaxExtendedLen}

// ParseExtHandshake parses the payload of an extension handshake (an
// Extended message with id ExtHandshakeID).
//
// The payload must be one bencoded dictionary of at most MaxExtendedLen
// bytes, nested at most 8 deep, with no trailing bytes, and every id in
// "m" that is an integer must be 0 to 255: anything else is an error
// wrapping ErrBadMessage. Beyond that, the parser is lenient: unknown keys
// are skipped, and a known key of the wrong type or with a value out of
// range ("v" as an integer, "p" of 0 or 70000, a "yourip" of 5 bytes, an
// "m" entry that is not an integer) is ignored, as if it were absent —
// none is worth dropping a peer over. The exception is "metadata_size":
// out of range it is reported in BadMetadataSize.
func ParseExtHandshake(payload []byte) (*ExtHandshake, error) {
	if len(payload) > MaxExtendedLen {
		return nil, bad("extension handshake of %d bytes", len(payload))
	}
	if len(payload) == 0 || payload[0] != 'd' {
		return nil, bad("extension handshake is not a dictionary")
	}
	var d extHandshakeDict
	if err := extDecoder.Unmarshal(payload, &d); err != nil {
		return nil, fmt.Errorf("%w: extension handshake: %w", ErrBadMessage, err)
	}
	h := new(ExtHandshake)
	if isDict(d.M) {
		var m map[string]bencode.RawMessage
		if err := extDecoder.Unmarshal(d.M, &m); err != nil {
			// Already checked as part of the whole dictionary.
			return nil, fmt.Errorf("%w: extension handshake: %w", ErrBadMessage, err)
		}
		h.M = make(map[string]int, len(m))
		for name, raw := range m {
			id, ok := rawInt(raw)
			if !ok {
				continue
			}
			if id < 0 || id > 255 {
				return nil, bad("extension handshake: id %d for %q", id, name)
			}
			h.M[name] = int(id)
		}
	}
	if isString(d.V) {
		var v string
		if extDecoder.Unmarshal(d.V, &v) == nil {
			h.V = v
		}
	}
	if p, ok := rawInt(d.P); ok && p > 0 && p <= math.MaxUint16 {
		h.P = int(p)
	}
	if q, ok := rawInt(d.Reqq); ok && q > 0 && q <= math.MaxInt32 {
		h.Reqq = int(q)
	}
	if n, ok := rawInt(d.MetadataSize); ok && n != 0 {
		if n > 0 && n <= MaxMetadataSize {
			h.MetadataSize = n
		} else {
			h.BadMetadataSize = n
		}
	}
	if u, ok := rawInt(d.UploadOnly); ok {
		h.UploadOnly = u != 0
	}
	if b, ok := rawBytes(d.YourIP); ok {
		if a, ok := netip.AddrFromSlice(b); ok {
			h.YourIP = a.Unmap()
		}
	}
	if b, ok := rawBytes(d.IPv4); ok && len(b) == 4 {
		h.IPv4 = netip.AddrFrom4([4]byte(b))
	}
	if b, ok := rawBytes(d.IPv6); ok && len(b) == 16 {
		h.IPv6 = netip.AddrFrom16([16]byte(b))
	}
	return h, nil
}

func isDict(raw bencode.RawMessage) bool   { return len(raw) > 0 && raw[0] == 'd' }
func isString(raw bencode.RawMessage) bool { return len(raw) > 0 && raw[0] >= '0' && raw[0] <= '9' }

// rawInt returns the integer raw holds, if it holds one. raw must be
// absent or a value the decoder has already checked.
func rawInt(raw bencode.RawMessage) (int64, bool) {
	if len(raw) == 0 || raw[0] != 'i' {
		return 0, false
	}
	var n int64
	if extDecoder.Unmarshal(raw, &n) != nil {
		return 0, false
	}
	return n, true
}

// rawBytes returns the string raw holds, if it holds one.
func rawBytes(raw bencode.RawMessage) ([]byte, bool) {
	if !isString(raw) {
		return nil, false
	}
	var b []byte
	if extDecoder.Unmarshal(raw, &b) != nil {
		return nil, false
	}
	return b, true
}

// Append appends h in bencode to b, keys sorted: the payload of an
// extension handshake. "m" is always written, if empty as an empty
// dictionary, as some clients look for it; the other fields are written
// when they are not zero, except BadMetadataSize, which never is. Ids in
// M are written as they are, and should be 0 to 255 for the result to
// parse.
func (h *ExtHandshake) Append(b []byte) []byte {
	b = append(b, 'd')
	if h.IPv4.Is4() {
		a := h.IPv4.As4()
		b = appendBString(appendBString(b, "ipv4"), string(a[:]))
	}
	if h.IPv6.IsValid() {
		a := h.IPv6.As16()
		b = appendBString(appendBString(b, "ipv6"), string(a[:]))
	}
	b = appendBString(b, "m")
	b = append(b, 'd')
	for _, name := range slices.Sorted(maps.Keys(h.M)) {
		b = appendBInt(appendBString(b, name), int64(h.M[name]))
	}
	b = append(b, 'e')
	if h.MetadataSize != 0 {
		b = appendBInt(appendBString(b, "metadata_size"), h.MetadataSize)
	}
	if h.P != 0 {
		b = appendBInt(appendBString(b, "p"), int64(h.P))
	}
	if h.Reqq != 0 {
		b = appendBInt(appendBString(b, "reqq"), int64(h.Reqq))
	}
	if h.UploadOnly {
		b = appendBInt(appendBString(b, "upload_only"), 1)
	}
	if h.V != "" {
		b = appendBString(appendBString(b, "v"), h.V)
	}
	if h.YourIP.IsValid() {
		ip := h.YourIP.Unmap()
		var a []byte
		if ip.Is4() {
			a4 := ip.As4()
			a = a4[:]
		} else {
			a16 := ip.As16()
			a = a16[:]
		}
		b = appendBString(appendBString(b, "yourip"), string(a))
	}
	return append(b, 'e')
}

func appendBString(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

func appendBInt(b []byte, n int64) []byte {
	b = append(b, 'i')
	b = strconv.AppendInt(b, n, 10)
	return append(b, 'e')
}
