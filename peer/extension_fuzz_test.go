package peer

import (
	"errors"
	"runtime/debug"
	"testing"

	"github.com/aiotorrent/aiotorrent/bencode"
)

func FuzzExtHandshake(f *testing.F) {
	for _, tc := range realHandshakes {
		f.Add([]byte(tc.payload))
	}
	f.Add([]byte("de"))
	f.Add([]byte("d1:md6:ut_pexi256eee"))
	f.Add([]byte("d1:md11:ut_metadatai2ee13:metadata_sizei1073741824ee"))
	f.Add([]byte("d13:metadata_sizei-1e1:vi123e6:yourip5:abcdee"))
	f.Add([]byte("d1:v1:x1:pi1e1:md1:ai1eee"))
	f.Add([]byte("d1:xlllllllleeeeeeeee"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("panic parsing %q: %v\n%s", data, p, debug.Stack())
			}
		}()
		h, err := ParseExtHandshake(data)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("ParseExtHandshake(%q): %v (%T) does not wrap ErrBadMessage", data, err, err)
			}
			if h != nil {
				t.Fatalf("ParseExtHandshake(%q) returned %s with its error", data, describeExt(h))
			}
			return
		}
		// What parses is a bencoded dictionary within the bounds.
		if err := (&bencode.Decoder{MaxDepth: maxExtDepth, MaxSize: MaxExtendedLen}).Valid(data); err != nil || data[0] != 'd' {
			t.Fatalf("ParseExtHandshake accepted %q: %v", data, err)
		}
		for name, id := range h.M {
			if id < 0 || id > 255 {
				t.Fatalf("id %d for %q", id, name)
			}
		}
		switch {
		case h.P < 0 || h.P > 65535,
			h.Reqq < 0,
			h.MetadataSize < 0 || h.MetadataSize > MaxMetadataSize,
			h.MetadataSize != 0 && h.BadMetadataSize != 0,
			h.BadMetadataSize > 0 && h.BadMetadataSize <= MaxMetadataSize,
			h.YourIP.Is4In6() || h.YourIP.Zone() != "",
			h.IPv4.IsValid() && !h.IPv4.Is4(),
			h.IPv6.IsValid() && !h.IPv6.Is6():
			t.Fatalf("ParseExtHandshake(%q) = %s", data, describeExt(h))
		}
		checkExtRoundTrip(t, h)
	})
}

func FuzzMetadataMsg(f *testing.F) {
	f.Add([]byte("d8:msg_typei0e5:piecei0ee"))
	f.Add([]byte("d8:msg_typei2e5:piecei0ee"))
	f.Add([]byte("d8:msg_typei2e5:piecei3e10:total_sizei31235ee"))
	f.Add(AppendMetadataMsg(nil, MetadataMsg{Type: MetadataData, TotalSize: 3425, Data: metadataBytes(3425)}))
	f.Add(AppendMetadataMsg(nil, MetadataMsg{Type: MetadataData, Piece: 1, TotalSize: 16400, Data: metadataBytes(16)}))
	f.Add([]byte("d8:msg_typei1e5:piecei0e10:total_sizei3eeeee"))
	f.Add([]byte("d5:piecei4e8:msg_typei0ee"))
	f.Add([]byte("d8:msg_typei3e5:piecei0eextra"))
	f.Add([]byte("d8:msg_typei1e5:piecei0e10:total_sizei1073741824ee"))
	f.Add([]byte("d1:xlllllllleeeeeeee8:msg_typei0e5:piecei0ee"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("panic parsing %q: %v\n%s", data, p, debug.Stack())
			}
		}()
		m, err := ParseMetadataMsg(data)
		switch {
		case errors.Is(err, ErrUnknownMetadataMsg):
			if errors.Is(err, ErrBadMessage) || m.Type == MetadataRequest || m.Type == MetadataData || m.Type == MetadataReject ||
				m.Piece != 0 || m.TotalSize != 0 || m.Data != nil {
				t.Fatalf("ParseMetadataMsg(%q) = %s, %v", data, describeMetadataMsg(m), err)
			}
			return
		case err != nil:
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("ParseMetadataMsg(%q): %v (%T) wraps neither ErrBadMessage nor ErrUnknownMetadataMsg", data, err, err)
			}
			if !sameMetadataMsg(m, MetadataMsg{}) {
				t.Fatalf("ParseMetadataMsg(%q) returned %s with its error", data, describeMetadataMsg(m))
			}
			return
		}
		switch {
		case m.Piece < 0 || m.Piece >= maxMetadataPieces,
			m.TotalSize < 0 || m.TotalSize > MaxMetadataSize,
			m.Type == MetadataData && (m.TotalSize == 0 || len(m.Data) != MetadataPieceLen(m.TotalSize, m.Piece)),
			m.Type != MetadataData && m.Data != nil:
			t.Fatalf("ParseMetadataMsg(%q) = %s", data, describeMetadataMsg(m))
		}
		// Data is the end of the payload, the rest a well-formed
		// dictionary.
		dict := data[:len(data)-len(m.Data)]
		if len(m.Data) > 0 && &m.Data[0] != &data[len(dict)] {
			t.Fatalf("ParseMetadataMsg(%q): Data does not alias the payload's end", data)
		}
		if err := (&bencode.Decoder{MaxDepth: maxExtDepth}).Valid(dict); err != nil || dict[0] != 'd' {
			t.Fatalf("ParseMetadataMsg accepted %q, whose dictionary %q is not: %v", data, dict, err)
		}
		checkMetadataRoundTrip(t, m)
	})
}
