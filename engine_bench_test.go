package aiotorrent

import (
	"context"
	"testing"
	"time"
)

// BenchmarkDownload measures our leecher fetching from our seeder, both in
// this process on loopback: 256 MiB in 1 MiB pieces, files on disk (the
// page cache). Two processes are measured by bench/ (see bench/README.md).
func BenchmarkDownload(b *testing.B) {
	mi, src := makeTorrent(b, "bench", 1<<20, testFile{"", 256 << 20})
	seed := startSeeder(b, mi, src)
	b.SetBytes(mi.Info.Length)
	b.ReportAllocs()
	for b.Loop() {
		leech, err := NewClient(Config{ListenAddr: "127.0.0.1:0", NoTrackers: true})
		if err != nil {
			b.Fatal(err)
		}
		tor, err := leech.Add(mi)
		if err != nil {
			b.Fatal(err)
		}
		tor.AddPeers(clientAddr(seed))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err = tor.DownloadAll(ctx, WithDir(b.TempDir()))
		cancel()
		leech.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
}
