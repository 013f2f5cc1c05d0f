package metainfo_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aiotorrent/aiotorrent/metainfo"
)

func TestFromInfo(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "testdata", "sample.torrent"))
	if err != nil {
		t.Fatal(err)
	}
	mi, err := metainfo.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	m := &metainfo.Magnet{InfoHash: mi.InfoHash, Trackers: []string{"http://127.0.0.1:1/announce", "udp://127.0.0.1:2"}, WebSeeds: []string{"http://127.0.0.1:3/"}}
	got, err := metainfo.FromInfo(mi.InfoBytes, m)
	if err != nil {
		t.Fatal(err)
	}
	if got.InfoHash != mi.InfoHash || got.Info.Name != mi.Info.Name || !bytes.Equal(got.InfoBytes, mi.InfoBytes) {
		t.Errorf("FromInfo gave %+v, want the torrent's info", got.Info)
	}
	if len(got.AnnounceList) != 2 || got.Announce != m.Trackers[0] || len(got.URLList) != 1 {
		t.Errorf("trackers %v (%q), web seeds %v: want the magnet's", got.AnnounceList, got.Announce, got.URLList)
	}
	if data, err := got.Marshal(); err != nil {
		t.Fatal(err)
	} else if back, err := metainfo.Parse(data); err != nil || back.InfoHash != mi.InfoHash {
		t.Errorf("the .torrent written back: %v", err)
	}

	other := *m
	other.InfoHash[0] ^= 1
	for _, tc := range []struct {
		name string
		info []byte
		m    *metainfo.Magnet
		want string
	}{
		{"another hash", mi.InfoBytes, &other, "hashes to"},
		{"empty", nil, m, "not a dictionary"},
		{"a list", []byte("le"), m, "not a dictionary"},
		{"truncated", mi.InfoBytes[:len(mi.InfoBytes)-1], m, "hashes to"},
	} {
		if _, err := metainfo.FromInfo(tc.info, tc.m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}
