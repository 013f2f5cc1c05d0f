package peer

import (
	"encoding/binary"
	"strconv"
)

// Type is a message's type: the byte after its length prefix.
type Type uint8

// Message types of BEP 3, BEP 5 (Port), BEP 6 (Suggest to AllowedFast)
// and BEP 10 (Extended). KeepAlive is not on the wire: it stands for the
// zero-length message.
const (
	Choke         Type = 0
	Unchoke       Type = 1
	Interested    Type = 2
	NotInterested Type = 3
	Have          Type = 4
	Bitfield      Type = 5
	Request       Type = 6
	Piece         Type = 7
	Cancel        Type = 8
	Port          Type = 9
	Suggest       Type = 0x0D
	HaveAll       Type = 0x0E
	HaveNone      Type = 0x0F
	Reject        Type = 0x10
	AllowedFast   Type = 0x11
	Extended      Type = 20
	KeepAlive     Type = 0xFF
)

var typeNames = map[Type]string{
	Choke: "choke", Unchoke: "unchoke", Interested: "interested",
	NotInterested: "not interested", Have: "have", Bitfield: "bitfield",
	Request: "request", Piece: "piece", Cancel: "cancel", Port: "port",
	Suggest: "suggest", HaveAll: "have all", HaveNone: "have none",
	Reject: "reject", AllowedFast: "allowed fast", Extended: "extended",
	KeepAlive: "keep-alive",
}

func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return "type " + strconv.Itoa(int(t))
}

// BlockSize is the size of the blocks pieces are requested in, and the
// largest request or block this package accepts.
const BlockSize = 16 << 10

// MaxExtendedLen bounds an extension message's payload (BEP 10 handshake,
// ut_metadata pieces of 16 KiB with their header, peer exchange).
const MaxExtendedLen = 64 << 10

// Message is one peer message. Which fields are meaningful depends on
// Type:
//
//	Have, Suggest, AllowedFast         Index
//	Request, Cancel, Reject            Index, Begin, Length
//	Piece                              Index, Begin, Payload (the block)
//	Bitfield                           Payload
//	Port                               Port
//	Extended                           ExtendedID, Payload
type Message struct {
	Type       Type
	Index      uint32
	Begin      uint32
	Length     uint32
	Port       uint16
	ExtendedID uint8
	Payload    []byte
}

// AppendMessage appends m in wire form (length prefix included) to b.
func AppendMessage(b []byte, m *Message) []byte {
	switch m.Type {
	case KeepAlive:
		return binary.BigEndian.AppendUint32(b, 0)
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
		return appendHeader(b, m.Type, 0)
	case Have, Suggest, AllowedFast:
		return AppendHave(b, m.Type, m.Index)
	case Request, Cancel, Reject:
		return AppendRequest(b, m.Type, m.Index, m.Begin, m.Length)
	case Piece:
		b = AppendPieceHeader(b, m.Index, m.Begin, len(m.Payload))
		return append(b, m.Payload...)
	case Port:
		b = appendHeader(b, Port, 2)
		return binary.BigEndian.AppendUint16(b, m.Port)
	case Extended:
		b = appendHeader(b, Extended, 1+len(m.Payload))
		b = append(b, m.ExtendedID)
		return append(b, m.Payload...)
	default: // Bitfield and unknown types: the payload as is
		b = appendHeader(b, m.Type, len(m.Payload))
		return append(b, m.Payload...)
	}
}

func appendHeader(b []byte, t Type, payload int) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(1+payload))
	return append(b, byte(t))
}

// AppendHave appends a message of one piece index (Have, Suggest or
// AllowedFast).
func AppendHave(b []byte, t Type, index uint32) []byte {
	b = appendHeader(b, t, 4)
	return binary.BigEndian.AppendUint32(b, index)
}

// AppendRequest appends a Request, Cancel or Reject.
func AppendRequest(b []byte, t Type, index, begin, length uint32) []byte {
	b = appendHeader(b, t, 12)
	b = binary.BigEndian.AppendUint32(b, index)
	b = binary.BigEndian.AppendUint32(b, begin)
	return binary.BigEndian.AppendUint32(b, length)
}

// AppendPieceHeader appends the header of a Piece message whose block of
// n bytes the caller writes next.
func AppendPieceHeader(b []byte, index, begin uint32, n int) []byte {
	b = appendHeader(b, Piece, 8+n)
	b = binary.BigEndian.AppendUint32(b, index)
	return binary.BigEndian.AppendUint32(b, begin)
}
