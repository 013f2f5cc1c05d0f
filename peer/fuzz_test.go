package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime/debug"
	"testing"
)

func FuzzReadMessage(f *testing.F) {
	wire, _, _ := validStream()
	f.Add(wire)
	for _, tc := range roundTripMessages {
		if len(tc.m.Payload) <= 1024 {
			f.Add(AppendMessage(nil, &tc.m))
		}
	}
	f.Add(AppendMessage(nil, &Message{Type: Piece, Index: 9, Begin: 32000, Payload: fill(668, 1)}))
	f.Add(append(withPayload(0xFF, []byte("xyz")), AppendHave(nil, Have, 1)...))
	f.Add(withPayload(Bitfield, []byte{0xFF, 0xC1}))
	f.Add(AppendRequest(nil, Request, 9, 16384, BlockSize))
	f.Add(header(100<<20, Piece))
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("panic reading %x: %v\n%s", data, p, debug.Stack())
			}
		}()
		checkStream(t, data, testLimits, false)
		checkStream(t, data, Limits{}, false)
		checkStream(t, data, testLimits, true)
	})
}

// checkStream reads messages from data until an error, which must be
// io.EOF, io.ErrUnexpectedEOF or wrap ErrBadMessage. Each message must be
// the bytes it was read from, as AppendMessage writes them, and must read
// back the same. With block set, blocks are read through Reader.Block.
func checkStream(t *testing.T, data []byte, limits Limits, block bool) {
	r := NewReader(bytes.NewReader(data), limits)
	var blockBuf [BlockSize]byte
	if block {
		r.Block = func(n int) []byte {
			if n < 0 || n > BlockSize {
				t.Fatalf("Block(%d)", n)
			}
			return blockBuf[:]
		}
	}
	var m Message
	var enc []byte
	pos := 0 // where the next message starts in data
	for i := 0; ; i++ {
		if i > len(data)/4 {
			t.Fatalf("read %d messages from %d bytes", i, len(data))
		}
		err := r.ReadMessage(&m)
		if err != nil {
			if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrBadMessage) {
				t.Fatalf("limits %+v: error %v (%T)", limits, err, err)
			}
			if err == io.EOF && pos != len(data) {
				t.Fatalf("limits %+v: io.EOF at %d of %d bytes", limits, pos, len(data))
			}
			if err == io.ErrUnexpectedEOF && pos == len(data) {
				t.Fatalf("limits %+v: io.ErrUnexpectedEOF at the end of a message", limits)
			}
			return
		}
		if m.Type == KeepAlive && len(m.Payload) != 0 {
			t.Fatalf("keep-alive with a payload of %d bytes", len(m.Payload))
		}
		if m.Type == Piece && int(m.Length) != len(m.Payload) {
			t.Fatalf("piece with Length %d and a block of %d bytes", m.Length, len(m.Payload))
		}
		enc = AppendMessage(enc[:0], &m)
		n := len(enc)
		if m.Type == KeepAlive && pos+5 <= len(data) && data[pos+4] == byte(KeepAlive) {
			// A message of type 0xFF on the wire, skipped.
			n = 4 + int(binary.BigEndian.Uint32(data[pos:]))
		} else if !bytes.HasPrefix(data[pos:], enc) {
			t.Fatalf("limits %+v: at %d, %s encodes to\n%x, read from\n%x", limits, pos, describe(m), enc, data[pos:min(len(data), pos+len(enc))])
		}
		pos += n

		var back Message
		r2 := NewReader(bytes.NewReader(enc), limits)
		if err := r2.ReadMessage(&back); err != nil {
			t.Fatalf("limits %+v: %s re-encoded as %x: %v", limits, describe(m), enc, err)
		}
		if !sameMessage(&back, &m) {
			t.Fatalf("limits %+v: re-read\n got %s\nwant %s", limits, describe(back), describe(m))
		}
		if err := r2.ReadMessage(&back); err != io.EOF {
			t.Fatalf("limits %+v: after the re-encoded %s: %v", limits, describe(m), err)
		}
	}
}

func FuzzHandshake(f *testing.F) {
	h := testHandshake()
	valid := AppendHandshake(nil, &h)
	f.Add(valid)
	f.Add(AppendHandshake(nil, &Handshake{}))
	f.Add(append(bytes.Clone(valid), AppendHave(nil, Have, 1)...))
	f.Add(valid[:47])
	f.Add(valid[:67])
	f.Add([]byte("\x13BitTorrent protocoL"))
	f.Add([]byte("\x14BitTorrent protocol"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ReadHandshake(bytes.NewReader(data))
		isBT := len(data) >= 20 && string(data[:20]) == "\x13"+Protocol
		switch {
		case err == nil:
			if len(data) < HandshakeLen || !isBT {
				t.Fatalf("handshake read from %x", data)
			}
			if enc := AppendHandshake(nil, &got); !bytes.Equal(enc, data[:HandshakeLen]) {
				t.Fatalf("re-encoded as %x, read from %x", enc, data[:HandshakeLen])
			}
			var r Reserved
			if got.Reserved[5]&0x10 != 0 {
				r.SetExtended()
			}
			if got.Reserved[7]&0x04 != 0 {
				r.SetFast()
			}
			if got.Reserved[7]&0x01 != 0 {
				r.SetDHT()
			}
			if r.Extended() != got.Reserved.Extended() || r.Fast() != got.Reserved.Fast() || r.DHT() != got.Reserved.DHT() {
				t.Fatalf("reserved bits of %x", got.Reserved)
			}
		case errors.Is(err, ErrNotBitTorrent):
			if isBT || len(data) < 48 {
				t.Fatalf("ErrNotBitTorrent for %x", data)
			}
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			if len(data) >= HandshakeLen || (len(data) >= 48 && !isBT) {
				t.Fatalf("%v for %d bytes", err, len(data))
			}
		default:
			t.Fatalf("error %v", err)
		}
	})
}
