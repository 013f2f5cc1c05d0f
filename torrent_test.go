package aiotorrent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aiotorrent/aiotorrent/bencode"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

func TestOpenFile(t *testing.T) {
	tr, err := Open(context.Background(), "testdata/sample.torrent")
	if err != nil {
		t.Fatal(err)
	}
	if !tr.HasMetadata() || tr.MetaInfo() == nil || tr.Private() {
		t.Errorf("HasMetadata %v MetaInfo %v Private %v", tr.HasMetadata(), tr.MetaInfo() != nil, tr.Private())
	}
	want := [][]string{{"udp://127.0.0.1:6969/announce"}, {"http://127.0.0.1:6969/announce"}}
	got := tr.Trackers()
	if len(got) != 2 || got[0][0] != want[0][0] || got[1][0] != want[1][0] {
		t.Errorf("Trackers() = %v, want %v", got, want)
	}
	got[0][0] = "changed" // callers get a copy
	if tr.Trackers()[0][0] != want[0][0] {
		t.Error("Trackers() exposes internal state")
	}
	m, err := metainfo.ParseMagnet(tr.Magnet())
	if err != nil || m.InfoHash != tr.InfoHash() || m.DisplayName != tr.Name() || len(m.Trackers) != 2 {
		t.Errorf("Magnet() = %q (%v)", tr.Magnet(), err)
	}
	var sum int64
	for _, f := range tr.Files() {
		sum += f.Length
	}
	if sum != tr.Length() {
		t.Errorf("files sum to %d, Length() = %d", sum, tr.Length())
	}
}

func TestOpenMagnet(t *testing.T) {
	tr, err := Open(context.Background(), "MAGNET:?xt=urn:btih:2941aba2ae62c8b110d5c579b6723aea81bdd666&ws=http%3A%2F%2F127.0.0.1%3A8000%2F")
	if err != nil {
		t.Fatal(err)
	}
	if tr.HasMetadata() || tr.Files() != nil || tr.Length() != 0 || tr.NumPieces() != 0 || tr.PieceLength() != 0 {
		t.Error("magnet torrent claims metadata")
	}
	if tr.Name() != tr.InfoHash().String() {
		t.Errorf("Name() without dn = %q, want the info hash", tr.Name())
	}
	if ws := tr.WebSeeds(); len(ws) != 1 || ws[0] != "http://127.0.0.1:8000/" {
		t.Errorf("WebSeeds() = %v", ws)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.torrent")
	os.WriteFile(bad, []byte("d4:infod4:name1:xee"), 0o644)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		src  string
		want string
	}{
		{"missing", context.Background(), filepath.Join(dir, "none.torrent"), "no such file"},
		{"invalid", context.Background(), bad, "piece length"},
		{"bad magnet", context.Background(), "magnet:?xt=urn:btih:zz", "magnet"},
		{"cancelled", cancelled, "testdata/sample.torrent", "context canceled"},
	}
	for _, tt := range tests {
		_, err := Open(tt.ctx, tt.src)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Open error %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
	_, err := Open(context.Background(), "magnet:?xt=urn:btmh:1220"+strings.Repeat("ab", 32))
	if !errors.Is(err, metainfo.ErrV2Only) {
		t.Errorf("v2 magnet: %v, want ErrV2Only", err)
	}
}

func TestFilesHidePadding(t *testing.T) {
	b, err := bencode.Marshal(map[string]any{
		"info": map[string]any{
			"name":         "padded",
			"piece length": 16384,
			"pieces":       strings.Repeat("x", 40),
			"files": []any{
				map[string]any{"length": 100, "path": []any{"a"}},
				map[string]any{"length": 16284, "path": []any{".pad", "16284"}, "attr": "p"},
				map[string]any{"length": 10, "path": []any{"b"}},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	files := FromMetaInfo(mi).Files()
	if len(files) != 2 || files[0].Index != 0 || files[1].Index != 2 || files[1].Offset != 16384 || files[1].Path != "padded/b" {
		t.Errorf("Files() = %+v", files)
	}
}
