package aiotorrent_test

import (
	"context"
	"fmt"
	"log"

	"github.com/aiotorrent/aiotorrent"
)

// Open a .torrent file and list what it holds.
func ExampleOpen() {
	t, err := aiotorrent.Open(context.Background(), "testdata/sample.torrent")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(t.Name(), t.InfoHash())
	fmt.Println(t.Length(), "bytes in", t.NumPieces(), "pieces of", t.PieceLength())
	for _, f := range t.Files() {
		fmt.Printf("%d: %s (%d bytes)\n", f.Index, f.Path, f.Length)
	}
	// Output:
	// aiotorrent-sample 2941aba2ae62c8b110d5c579b6723aea81bdd666
	// 3163173 bytes in 13 pieces of 262144
	// 0: aiotorrent-sample/README.txt (100 bytes)
	// 1: aiotorrent-sample/media/clip.bin (3158073 bytes)
	// 2: aiotorrent-sample/media/notes.txt (5000 bytes)
}

// A magnet link gives the info hash, name and trackers at once; the file
// list comes with the metadata, from peers.
func ExampleOpen_magnet() {
	link := "magnet:?xt=urn:btih:2941aba2ae62c8b110d5c579b6723aea81bdd666&dn=aiotorrent-sample&tr=udp%3A%2F%2F127.0.0.1%3A6969%2Fannounce"
	t, err := aiotorrent.Open(context.Background(), link)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(t.Name(), t.InfoHash(), t.HasMetadata())
	fmt.Println(t.Trackers())
	// Output:
	// aiotorrent-sample 2941aba2ae62c8b110d5c579b6723aea81bdd666 false
	// [[udp://127.0.0.1:6969/announce]]
}
