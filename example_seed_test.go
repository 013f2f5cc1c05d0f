package aiotorrent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/aiotorrent/aiotorrent"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// Seed a folder until every byte of the torrent has been uploaded once,
// at most 1 MiB/s, while a leecher in the same program downloads it.
// Seed first checks the data on disk and refuses an incomplete folder.
func ExampleTorrent_Seed() {
	ctx := context.Background()
	work, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(work)
	content := bytes.Repeat([]byte("seed me "), 64<<10/8)
	src := filepath.Join(work, "data")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "file.bin"), content, 0o644)
	mi, err := metainfo.Create(ctx, filepath.Join(src, "file.bin"), metainfo.CreateOptions{PieceLength: 16 << 10})
	if err != nil {
		log.Fatal(err)
	}

	seeder, err := aiotorrent.NewClient(aiotorrent.Config{ListenAddr: "127.0.0.1:0", NoTrackers: true, NoDHT: true, UploadLimit: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer seeder.Close()
	st, _ := seeder.Add(mi)

	// An empty folder is refused.
	err = st.Seed(ctx, aiotorrent.WithDir(filepath.Join(work, "empty")))
	fmt.Println("empty folder refused:", errors.Is(err, aiotorrent.ErrIncomplete))

	seeded := make(chan error, 1)
	go func() {
		seeded <- st.Seed(ctx, aiotorrent.WithDir(src), aiotorrent.SeedRatio(1),
			aiotorrent.OnCheck(func(p aiotorrent.CheckProgress) {
				if p.Done {
					fmt.Printf("checked: %d of %d pieces present\n", p.Verified, p.Pieces)
				}
			}))
	}()
	for !st.Stats().Running { // the check is done when the torrent runs
		time.Sleep(10 * time.Millisecond)
	}

	leecher, err := aiotorrent.NewClient(aiotorrent.Config{ListenAddr: "127.0.0.1:0", NoTrackers: true, NoDHT: true})
	if err != nil {
		log.Fatal(err)
	}
	defer leecher.Close()
	lt, _ := leecher.Add(mi)
	lt.AddPeers(seeder.Addr().(*net.TCPAddr).AddrPort())
	if err := lt.DownloadAll(ctx, aiotorrent.WithDir(filepath.Join(work, "downloads"))); err != nil {
		log.Fatal(err)
	}
	fmt.Println("seed done:", <-seeded)
	// Output:
	// empty folder refused: true
	// checked: 4 of 4 pieces present
	// seed done: <nil>
}
