package storage_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/storage"
)

// A torrent of two files, the second of which is not wanted: the piece
// they share keeps the second file's bytes in the parts file.
func ExampleNewFile() {
	info := &metainfo.Info{
		Name:        "photos",
		PieceLength: 1024,
		MultiFile:   true,
		Files: []metainfo.File{
			{Path: []string{"photos", "a.jpg"}, Length: 1500, Offset: 0},
			{Path: []string{"photos", "b.jpg"}, Length: 500, Offset: 1500},
		},
		Length: 2000,
		Pieces: make([]byte, 2*metainfo.HashSize),
	}
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	s, err := storage.NewFile(dir, info, metainfo.Hash{1}, storage.FileOptions{Selected: []bool{true, false}})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	for i := range info.NumPieces() { // pieces as the engine writes them once verified
		p := make([]byte, info.PieceSize(i))
		if _, err := s.WriteAt(p, int64(i)*info.PieceLength); err != nil {
			panic(err)
		}
	}
	if err := s.FileComplete(0); err != nil {
		panic(err)
	}
	_, errA := os.Stat(filepath.Join(dir, "photos", "a.jpg"))
	_, errB := os.Stat(filepath.Join(dir, "photos", "b.jpg"))
	fmt.Println("a.jpg exists:", errA == nil)
	fmt.Println("b.jpg exists:", errB == nil)
	// Output:
	// a.jpg exists: true
	// b.jpg exists: false
}
