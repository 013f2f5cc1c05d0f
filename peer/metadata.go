package peer

import (
	"errors"
	"fmt"

	"github.com/aiotorrent/aiotorrent/bencode"
)

// MetadataPieceSize is the size of the pieces a torrent's metadata (its
// bencoded info dictionary) is exchanged in (BEP 9); the last piece may
// be shorter.
const MetadataPieceSize = 16 << 10

// MaxMetadataSize bounds the metadata this package exchanges: the
// "metadata_size" of an extension handshake and the "total_size" of a
// ut_metadata data message. BEP 9 sets no bound, but a peer's claim is
// what a client sizes its buffer for the metadata by, so one is needed.
//
// Info dictionaries are mostly a few KiB to a few MiB: 20 bytes of hash
// per piece and some tens of bytes per file. Only collections of tens of
// thousands of files reach tens of MB (one of about 30 MB is reported to
// fail against libtorrent's default). libtorrent (qBittorrent, Deluge)
// refuses a data message whose total_size exceeds its max_metadata_size
// setting, 30 MiB by default. The bound here is just above that, so that
// whatever most of a swarm can fetch by magnet link we can too, and it
// is half of metainfo.MaxSize, which bounds a whole .torrent file. A
// client holding metadata larger than this (from a .torrent file) should
// not offer it over ut_metadata: peers could not request its pieces past
// the bound.
const MaxMetadataSize = 32 << 20

// maxMetadataPieces is the number of metadata pieces of MaxMetadataSize.
const maxMetadataPieces = MaxMetadataSize / MetadataPieceSize

// Types of ut_metadata messages (BEP 9 "msg_type").
const (
	MetadataRequest = 0 // asks for a piece
	MetadataData    = 1 // carries a piece
	MetadataReject  = 2 // refuses a request
)

// ErrUnknownMetadataMsg is returned by ParseMetadataMsg for a message of a
// type BEP 9 does not define. BEP 9 says such messages must be ignored,
// so it does not wrap ErrBadMessage: the peer has not broken the
// protocol.
var ErrUnknownMetadataMsg = errors.New("unknown ut_metadata message type")

// MetadataMsg is a ut_metadata message (BEP 9): the payload of an
// Extended message sent under the id the receiver gave ExtMetadata in its
// extension handshake.
type MetadataMsg struct {
	Type  int // MetadataRequest, MetadataData or MetadataReject
	Piece int // the piece of the metadata it is about

	// TotalSize is the size of the whole metadata, 1 to MaxMetadataSize:
	// always set in a data message; set in a request or reject only if
	// the sender included a valid one (libtorrent does in its rejects),
	// else 0.
	TotalSize int64

	// Data is the piece a data message carries; nil in other messages.
	// As returned by ParseMetadataMsg it aliases the end of the payload
	// it was parsed from: copy it before the payload's buffer is reused
	// (by the next Reader.ReadMessage).
	Data []byte
}

// MetadataPieces returns the number of MetadataPieceSize pieces metadata
// of size bytes is exchanged in; 0 if size is not positive.
func MetadataPieces(size int64) int {
	if size <= 0 {
		return 0
	}
	n := size / MetadataPieceSize
	if size%MetadataPieceSize != 0 {
		n++
	}
	return int(n)
}

// MetadataPieceLen returns the length of piece of metadata of size bytes:
// MetadataPieceSize except for the last piece, and 0 for a piece that is
// not one of the metadata's.
func MetadataPieceLen(size int64, piece int) int {
	if piece < 0 || piece >= MetadataPieces(size) {
		return 0
	}
	return int(min(MetadataPieceSize, size-int64(piece)*MetadataPieceSize))
}

// metadataDict is the dictionary at the start of a ut_metadata message,
// each known key as its raw value.
type metadataDict struct {
	MsgType   bencode.RawMessage `bencode:"msg_type"`
	Piece     bencode.RawMessage `bencode:"piece"`
	TotalSize bencode.RawMessage `bencode:"total_size"`
}

// ParseMetadataMsg parses a ut_metadata message: a bencoded dictionary
// followed, in a data message, by the piece itself.
//
// A message whose "msg_type" is an integer other than the three BEP 9
// defines gives an error wrapping ErrUnknownMetadataMsg, for the caller
// to ignore, and a MetadataMsg with only Type set. Any other problem gives
// an error wrapping ErrBadMessage: a payload larger than MaxExtendedLen,
// a dictionary that is not well-formed bencode or nested more than 8 deep,
// "msg_type" or "piece" missing or not integers, a piece not below
// MetadataPieces(MaxMetadataSize), a data message whose "total_size" is
// missing or not 1 to MaxMetadataSize, whose piece is not one of the
// metadata's, or whose data is not exactly that piece's length
// (MetadataPieceLen), and a request or reject with bytes after its
// dictionary. Unknown keys are skipped, and a "total_size" in a request
// or reject that is not valid is ignored.
//
// The returned Data aliases payload.
func ParseMetadataMsg(payload []byte) (MetadataMsg, error) {
	if len(payload) > MaxExtendedLen {
		return MetadataMsg{}, bad("ut_metadata message of %d bytes", len(payload))
	}
	if len(payload) == 0 || payload[0] != 'd' {
		return MetadataMsg{}, bad("ut_metadata message does not start with a dictionary")
	}
	n, err := valueLen(payload, maxExtDepth)
	if err != nil {
		return MetadataMsg{}, fmt.Errorf("%w: ut_metadata message: %w", ErrBadMessage, err)
	}
	var d metadataDict
	if err := extDecoder.Unmarshal(payload[:n], &d); err != nil {
		return MetadataMsg{}, fmt.Errorf("%w: ut_metadata message: %w", ErrBadMessage, err)
	}
	t, ok := rawInt(d.MsgType)
	if !ok {
		return MetadataMsg{}, bad("ut_metadata message without an integer msg_type")
	}
	switch t {
	case MetadataRequest, MetadataData, MetadataReject:
	default:
		return MetadataMsg{Type: int(t)}, fmt.Errorf("%w %d", ErrUnknownMetadataMsg, t)
	}
	m := MetadataMsg{Type: int(t)}
	piece, ok := rawInt(d.Piece)
	if !ok {
		return MetadataMsg{}, bad("ut_metadata message type %d without an integer piece", t)
	}
	if piece < 0 || piece >= maxMetadataPieces {
		return MetadataMsg{}, bad("ut_metadata message type %d for piece %d", t, piece)
	}
	m.Piece = int(piece)
	total, ok := rawInt(d.TotalSize)
	totalValid := ok && total > 0 && total <= MaxMetadataSize
	rest := payload[n:]
	if t != MetadataData {
		if len(rest) != 0 {
			return MetadataMsg{}, bad("ut_metadata message type %d with %d bytes after its dictionary", t, len(rest))
		}
		if totalValid {
			m.TotalSize = total
		}
		return m, nil
	}
	if !ok {
		return MetadataMsg{}, bad("ut_metadata data without an integer total_size")
	}
	if !totalValid {
		return MetadataMsg{}, bad("ut_metadata data with total_size %d", total)
	}
	m.TotalSize = total
	if want := MetadataPieceLen(total, m.Piece); want == 0 || len(rest) != want {
		return MetadataMsg{}, bad("ut_metadata data of %d bytes for piece %d of %d bytes of metadata", len(rest), piece, total)
	}
	m.Data = rest
	return m, nil
}

// AppendMetadataMsg appends m in wire form to b: the payload of the
// Extended message, which the caller sends under the id the peer gave
// ExtMetadata. The dictionary has "msg_type" and "piece", and
// "total_size" if TotalSize is not 0; Data follows it in a data message
// and is left out of the others.
func AppendMetadataMsg(b []byte, m MetadataMsg) []byte {
	b = append(b, 'd')
	b = appendBInt(appendBString(b, "msg_type"), int64(m.Type))
	b = appendBInt(appendBString(b, "piece"), int64(m.Piece))
	if m.TotalSize != 0 {
		b = appendBInt(appendBString(b, "total_size"), m.TotalSize)
	}
	b = append(b, 'e')
	if m.Type == MetadataData {
		b = append(b, m.Data...)
	}
	return b
}

// errValueLen is what valueLen reports; the bencode decoder, run on the
// prefix it finds, says more about what is wrong when it can.
var errValueLen = errors.New("no complete bencode value")

// valueLen returns the length of the bencode value b starts with, nested
// at most maxDepth deep. It checks only what it needs to find the value's
// end: that it is well formed is left to the bencode decoder, run on the
// prefix afterwards. Given a well-formed value followed by anything, it
// returns exactly that value's length.
func valueLen(b []byte, maxDepth int) (int, error) {
	depth := 0
	i := 0
	for {
		if i >= len(b) {
			return 0, fmt.Errorf("%w: input ends at %d", errValueLen, i)
		}
		switch c := b[i]; {
		case c == 'i':
			j := i + 1
			for j < len(b) && b[j] != 'e' {
				j++
			}
			if j == len(b) {
				return 0, fmt.Errorf("%w: integer at %d does not end", errValueLen, i)
			}
			i = j + 1
		case c >= '0' && c <= '9':
			n, j := 0, i
			for j < len(b) && b[j] >= '0' && b[j] <= '9' {
				n = n*10 + int(b[j]-'0')
				if n > len(b) {
					return 0, fmt.Errorf("%w: string at %d runs past the end", errValueLen, i)
				}
				j++
			}
			if j == len(b) || b[j] != ':' {
				return 0, fmt.Errorf("%w: string length at %d", errValueLen, i)
			}
			j++
			if n > len(b)-j {
				return 0, fmt.Errorf("%w: string at %d runs past the end", errValueLen, i)
			}
			i = j + n
		case c == 'l' || c == 'd':
			depth++
			if depth > maxDepth {
				return 0, fmt.Errorf("%w: nested more than %d deep at %d", errValueLen, maxDepth, i)
			}
			i++
			continue
		case c == 'e' && depth > 0:
			depth--
			i++
		default:
			return 0, fmt.Errorf("%w: byte %q at %d", errValueLen, c, i)
		}
		if depth == 0 {
			return i, nil
		}
	}
}
