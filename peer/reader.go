package peer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrBadMessage is wrapped by every error about a malformed message: the
// peer broke the protocol and should be dropped.
var ErrBadMessage = errors.New("bad peer message")

// Limits describe the torrent a connection is about, so messages can be
// checked against it. A zero NumPieces (metadata not known yet) accepts
// any piece index and a bitfield of up to MaxBitfieldLen bytes.
type Limits struct {
	NumPieces   int
	PieceLength int64
	Length      int64 // total content length
}

// MaxBitfieldLen bounds a bitfield when the piece count is not known.
const MaxBitfieldLen = 1 << 20

// pieceSize is the size of piece i, which must be a valid index.
func (l *Limits) pieceSize(i uint32) int64 {
	if int(i) == l.NumPieces-1 {
		return l.Length - int64(i)*l.PieceLength
	}
	return l.PieceLength
}

// Reader reads messages from a connection.
type Reader struct {
	r      *bufio.Reader
	limits Limits
	buf    []byte   // payloads other than blocks; grown to at most the largest allowed
	fixed  [12]byte // length prefix and fixed-size fields, here so they are not allocated per message

	// Block, if set, returns the buffer a Piece message's block of n
	// bytes (at most BlockSize) is read into, so blocks can go straight
	// into pooled memory. Without it blocks are read into the Reader's own
	// buffer.
	Block func(n int) []byte
}

// NewReader returns a Reader of messages from r, checked against limits.
func NewReader(r io.Reader, limits Limits) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < 32<<10 {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &Reader{r: br, limits: limits}
}

// SetLimits changes the limits (once a torrent's metadata is known).
func (r *Reader) SetLimits(l Limits) { r.limits = l }

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadMessage, fmt.Sprintf(format, args...))
}

// maxLen is the largest length prefix allowed for a message of type t.
func (r *Reader) maxLen(t Type) uint32 {
	switch t {
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
		return 1
	case Have, Suggest, AllowedFast:
		return 5
	case Request, Cancel, Reject:
		return 13
	case Piece:
		return 9 + BlockSize
	case Port:
		return 3
	case Bitfield:
		if r.limits.NumPieces > 0 {
			return 1 + uint32((r.limits.NumPieces+7)/8)
		}
		return 1 + MaxBitfieldLen
	case Extended:
		return 2 + MaxExtendedLen
	default:
		return 1 + MaxExtendedLen // unknown types are read and skipped
	}
}

// minLen is the smallest length prefix allowed for a message of type t.
func minLen(t Type) uint32 {
	switch t {
	case Have, Suggest, AllowedFast:
		return 5
	case Request, Cancel, Reject:
		return 13
	case Piece:
		return 9
	case Port:
		return 3
	case Extended:
		return 2
	default:
		return 1
	}
}

// ReadMessage reads the next message into m. Its Payload stays valid
// until the next call, except a block read into a buffer from Block,
// which is the caller's. A malformed message gives an error wrapping
// ErrBadMessage; nothing is allocated for a length that is out of bounds.
// Messages of unknown types are returned with their payload, for the
// caller to ignore, except type 0xFF, the value of KeepAlive: its payload
// is skipped and it is returned as a keep-alive.
func (r *Reader) ReadMessage(m *Message) error {
	if _, err := io.ReadFull(r.r, r.fixed[:4]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(r.fixed[:4])
	*m = Message{}
	if n == 0 {
		m.Type = KeepAlive
		return nil
	}
	b, err := r.r.ReadByte()
	if err != nil {
		return unexpected(err)
	}
	t := Type(b)
	m.Type = t
	if n > r.maxLen(t) || n < minLen(t) {
		return bad("%s message of length %d", t, n)
	}
	switch t {
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
		return nil
	case Have, Suggest, AllowedFast:
		p := r.fixed[:4]
		if _, err := io.ReadFull(r.r, p); err != nil {
			return unexpected(err)
		}
		m.Index = binary.BigEndian.Uint32(p)
		return r.checkIndex(m)
	case Request, Cancel, Reject:
		p := r.fixed[:12]
		if _, err := io.ReadFull(r.r, p); err != nil {
			return unexpected(err)
		}
		m.Index = binary.BigEndian.Uint32(p)
		m.Begin = binary.BigEndian.Uint32(p[4:])
		m.Length = binary.BigEndian.Uint32(p[8:])
		if m.Length == 0 || m.Length > BlockSize {
			return bad("%s of %d bytes", t, m.Length)
		}
		return r.checkRange(m, int64(m.Length))
	case Piece:
		p := r.fixed[:8]
		if _, err := io.ReadFull(r.r, p); err != nil {
			return unexpected(err)
		}
		m.Index = binary.BigEndian.Uint32(p)
		m.Begin = binary.BigEndian.Uint32(p[4:])
		size := int(n - 9)
		m.Length = uint32(size)
		if err := r.checkRange(m, int64(size)); err != nil {
			return err
		}
		if r.Block != nil {
			m.Payload = r.Block(size)[:size]
		} else {
			m.Payload = r.payload(size)
		}
		if _, err := io.ReadFull(r.r, m.Payload); err != nil {
			return unexpected(err)
		}
		return nil
	case Port:
		p := r.fixed[:2]
		if _, err := io.ReadFull(r.r, p); err != nil {
			return unexpected(err)
		}
		m.Port = binary.BigEndian.Uint16(p)
		return nil
	case Extended:
		id, err := r.r.ReadByte()
		if err != nil {
			return unexpected(err)
		}
		m.ExtendedID = id
		m.Payload = r.payload(int(n - 2))
	case Bitfield:
		m.Payload = r.payload(int(n - 1))
	default:
		m.Payload = r.payload(int(n - 1))
	}
	if _, err := io.ReadFull(r.r, m.Payload); err != nil {
		return unexpected(err)
	}
	if t == Bitfield {
		return r.checkBitfield(m.Payload)
	}
	if t == KeepAlive {
		// No BEP defines type 0xFF on the wire, and KeepAlive stands for
		// it here: skip it like any unknown message, but report it as
		// what it then is, a keep-alive, not one with a payload that
		// AppendMessage would drop.
		m.Payload = nil
	}
	return nil
}

func (r *Reader) payload(n int) []byte {
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	return r.buf[:n]
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (r *Reader) checkIndex(m *Message) error {
	if r.limits.NumPieces > 0 && int64(m.Index) >= int64(r.limits.NumPieces) {
		return bad("%s of piece %d, the torrent has %d", m.Type, m.Index, r.limits.NumPieces)
	}
	return nil
}

// checkRange checks that n bytes at m.Begin lie within piece m.Index.
func (r *Reader) checkRange(m *Message, n int64) error {
	if err := r.checkIndex(m); err != nil {
		return err
	}
	if r.limits.NumPieces == 0 {
		return nil
	}
	if size := r.limits.pieceSize(m.Index); int64(m.Begin)+n > size {
		return bad("%s of %d bytes at %d in piece %d of %d bytes", m.Type, n, m.Begin, m.Index, size)
	}
	return nil
}

// checkBitfield checks a bitfield's length and that its spare bits are
// clear.
func (r *Reader) checkBitfield(b []byte) error {
	np := r.limits.NumPieces
	if np == 0 {
		return nil
	}
	if len(b) != (np+7)/8 {
		return bad("bitfield of %d bytes for %d pieces", len(b), np)
	}
	if spare := np % 8; spare != 0 && b[len(b)-1]&(0xFF>>spare) != 0 {
		return bad("bitfield with spare bits set")
	}
	return nil
}
