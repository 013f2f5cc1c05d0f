package aiotorrent_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/aiotorrent/aiotorrent"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// Download a file from a seeder, pieces in order. Here the seeder is a
// second client in the same program, both on loopback, and the leecher is
// told its address; normally peers come from the torrent's trackers.
func ExampleTorrent_Download() {
	ctx := context.Background()
	work, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(work)

	// Content and its torrent: one file of 100 KiB, 16 KiB pieces.
	content := bytes.Repeat([]byte("aiotorrent "), 100<<10/11)
	src := filepath.Join(work, "seeder")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "hello.txt"), content, 0o644)
	mi, err := metainfo.Create(ctx, filepath.Join(src, "hello.txt"), metainfo.CreateOptions{PieceLength: 16 << 10})
	if err != nil {
		log.Fatal(err)
	}

	// The seeder serves the folder the file is in.
	seeder, err := aiotorrent.NewClient(aiotorrent.Config{ListenAddr: "127.0.0.1:0", NoTrackers: true, NoDHT: true})
	if err != nil {
		log.Fatal(err)
	}
	defer seeder.Close()
	st, _ := seeder.Add(mi)
	if err := st.Start(aiotorrent.WithDir(src)); err != nil {
		log.Fatal(err)
	}

	// The leecher downloads the torrent's only file.
	leecher, err := aiotorrent.NewClient(aiotorrent.Config{ListenAddr: "127.0.0.1:0", NoTrackers: true, NoDHT: true})
	if err != nil {
		log.Fatal(err)
	}
	defer leecher.Close()
	t, _ := leecher.Add(mi)
	t.AddPeers(netip.MustParseAddrPort(seeder.Addr().(*net.TCPAddr).AddrPort().String()))
	var order []int
	err = t.Download(ctx, t.Files()[0],
		aiotorrent.WithDir(filepath.Join(work, "downloads")),
		aiotorrent.WithStrategy(aiotorrent.Sequential),
		aiotorrent.OnPiece(func(p aiotorrent.Piece) { order = append(order, p.Index) }))
	if err != nil {
		log.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(work, "downloads", "hello.txt"))
	fmt.Println("pieces in order:", order)
	fmt.Println("identical:", bytes.Equal(got, content))
	// Output:
	// pieces in order: [0 1 2 3 4 5 6]
	// identical: true
}
