// Package peer implements the BitTorrent peer wire protocol (BEP 3): the
// handshake, with the reserved bits of the extension protocol (BEP 10),
// the Fast extension (BEP 6) and the DHT (BEP 5), and a bounded codec for
// every message.
//
// The codec never trusts a length it reads: a message longer than the
// largest the protocol allows for its type, a bitfield of the wrong size,
// or a request or block outside its piece is an error, and nothing is
// allocated for it.
package peer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Protocol is the protocol string that starts every handshake.
const Protocol = "BitTorrent protocol"

// HandshakeLen is the length of a whole handshake.
const HandshakeLen = 1 + len(Protocol) + 8 + 20 + 20

// ErrNotBitTorrent is returned by ReadHandshake when the other side does
// not speak the BitTorrent protocol (or speaks it encrypted).
var ErrNotBitTorrent = errors.New("not a BitTorrent handshake")

// Reserved holds the eight reserved handshake bytes, where peers announce
// the extensions they support.
type Reserved [8]byte

// Bits of the reserved bytes.
const (
	extendedByte, extendedBit = 5, 0x10 // BEP 10
	fastByte, fastBit         = 7, 0x04 // BEP 6
	dhtByte, dhtBit           = 7, 0x01 // BEP 5
)

// Extended reports support for the extension protocol (BEP 10).
func (r Reserved) Extended() bool { return r[extendedByte]&extendedBit != 0 }

// Fast reports support for the Fast extension (BEP 6).
func (r Reserved) Fast() bool { return r[fastByte]&fastBit != 0 }

// DHT reports a DHT node (BEP 5).
func (r Reserved) DHT() bool { return r[dhtByte]&dhtBit != 0 }

// SetExtended sets the extension protocol bit.
func (r *Reserved) SetExtended() { r[extendedByte] |= extendedBit }

// SetFast sets the Fast extension bit.
func (r *Reserved) SetFast() { r[fastByte] |= fastBit }

// SetDHT sets the DHT bit.
func (r *Reserved) SetDHT() { r[dhtByte] |= dhtBit }

// Handshake is the first message each side sends.
type Handshake struct {
	Reserved Reserved
	InfoHash [20]byte
	PeerID   [20]byte
}

// AppendHandshake appends h in wire form to b.
func AppendHandshake(b []byte, h *Handshake) []byte {
	b = append(b, byte(len(Protocol)))
	b = append(b, Protocol...)
	b = append(b, h.Reserved[:]...)
	b = append(b, h.InfoHash[:]...)
	return append(b, h.PeerID[:]...)
}

// WriteHandshake writes h to w.
func WriteHandshake(w io.Writer, h *Handshake) error {
	var buf [HandshakeLen]byte
	_, err := w.Write(AppendHandshake(buf[:0], h))
	return err
}

// ReadHandshakeStart reads a handshake up to its info hash: what the
// receiving side of a connection needs to pick the torrent before it
// answers. ReadPeerID reads the rest.
func ReadHandshakeStart(r io.Reader) (Reserved, [20]byte, error) {
	var buf [1 + len(Protocol) + 8 + 20]byte
	var res Reserved
	var hash [20]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return res, hash, fmt.Errorf("read handshake: %w", err)
	}
	if buf[0] != byte(len(Protocol)) || !bytes.Equal(buf[1:1+len(Protocol)], []byte(Protocol)) {
		return res, hash, ErrNotBitTorrent
	}
	copy(res[:], buf[1+len(Protocol):])
	copy(hash[:], buf[1+len(Protocol)+8:])
	return res, hash, nil
}

// ReadPeerID reads the peer id that ends a handshake.
func ReadPeerID(r io.Reader) ([20]byte, error) {
	var id [20]byte
	if _, err := io.ReadFull(r, id[:]); err != nil {
		return id, fmt.Errorf("read handshake peer id: %w", err)
	}
	return id, nil
}

// ReadHandshake reads a whole handshake.
func ReadHandshake(r io.Reader) (Handshake, error) {
	var h Handshake
	var err error
	if h.Reserved, h.InfoHash, err = ReadHandshakeStart(r); err != nil {
		return h, err
	}
	h.PeerID, err = ReadPeerID(r)
	return h, err
}
