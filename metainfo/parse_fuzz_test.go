package metainfo_test

import (
	"math"
	"testing"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

// FuzzParse checks that Parse never panics and that what it accepts keeps
// its promises: the piece count matches the hashes and the length, files
// are contiguous and add up to the length, no path can leave the download
// folder, and Marshal then Parse gives the same torrent and info hash.
//
// Seeds live in testdata/fuzz/FuzzParse; more come from f.Add.
func FuzzParse(f *testing.F) {
	for _, tc := range miValidCases(f) {
		f.Add(tc.data)
	}
	f.Add(miTorrent(f, miMulti("d", 1024, miFile(1, "a"), miSet(miFile(1023, ".pad", "x"), "attr", "p"), miFile(1, "b")),
		"announce-list", []any{[]any{"http://a.test/"}}, "url-list", "http://s.test/"))
	// Near the bounds of lengths and counts, to steer towards overflows.
	f.Add(miTorrent(f, miMulti("d", 1024, miFile(1, "a"), miFile(math.MaxInt64, "b"), miFile(1<<50, "c"))))
	f.Add(miTorrent(f, miSingle("f", metainfo.MaxTotalLength, 1024)))
	f.Add(miTorrent(f, map[string]any{"name": "v2", "piece length": int64(16384), "meta version": int64(2),
		"file tree": map[string]any{"a": map[string]any{"": map[string]any{"length": int64(1)}}}}))
	// Garbage.
	f.Add([]byte(""))
	f.Add([]byte("le"))
	f.Add([]byte("d4:infoi1ee"))
	f.Add([]byte("d4:infod4:name999999999999:xee"))
	f.Add([]byte("d4:infod4:name2:..12:piece lengthi1024e6:lengthi1e6:pieces20:aaaaaaaaaaaaaaaaaaaaee"))
	f.Add([]byte("d4:infod5:filesld6:lengthi1e4:pathl2:..eee4:name1:d12:piece lengthi1024e6:pieces20:aaaaaaaaaaaaaaaaaaaaee"))

	f.Fuzz(func(t *testing.T, data []byte) {
		mi, err := metainfo.Parse(data)
		if err != nil {
			if mi != nil {
				t.Fatalf("Parse returned both %+v and %v", mi, err)
			}
			return
		}
		if mi == nil {
			t.Fatal("Parse returned nil, nil")
		}
		miCheckInfo(t, mi)
		_ = mi.Trackers()
		_ = mi.Magnet()
		miRoundTrip(t, mi)
	})
}
