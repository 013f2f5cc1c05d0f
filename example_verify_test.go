package aiotorrent_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/aiotorrent/aiotorrent"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// Check a folder's data against a torrent, after one byte of it changed.
// Verify changes nothing and contacts no peer.
func ExampleTorrent_Verify() {
	ctx := context.Background()
	work, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(work)
	path := filepath.Join(work, "file.bin")
	os.WriteFile(path, bytes.Repeat([]byte("verify me "), 64<<10/10), 0o644)
	mi, err := metainfo.Create(ctx, path, metainfo.CreateOptions{PieceLength: 16 << 10})
	if err != nil {
		log.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	f.WriteAt([]byte("!"), 40000) // in piece 2
	f.Close()

	t := aiotorrent.FromMetaInfo(mi)
	r, err := t.Verify(ctx, aiotorrent.WithDir(work))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d of %d pieces right; bad: %v\n", r.Verified, r.Pieces, r.Bad)
	for _, fc := range r.Files {
		fmt.Println(fc.File.Path, "ok:", fc.OK())
	}
	// Output:
	// 3 of 4 pieces right; bad: [2]
	// file.bin ok: false
}
