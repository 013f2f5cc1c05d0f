package aiotorrent_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/aiotorrent/aiotorrent"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// exampleSwarm makes a 1 MiB file, its torrent, and a seeder of it on
// loopback, and returns the torrent opened in a second client told of
// the seeder, with the file's content and a function to clean up.
func exampleSwarm() (*aiotorrent.Torrent, []byte, func()) {
	work, _ := os.MkdirTemp("", "example")
	content := make([]byte, 1<<20)
	for i := range content {
		content[i] = byte(i * 7 / 5)
	}
	os.WriteFile(filepath.Join(work, "movie.mp4"), content, 0o644)
	mi, err := metainfo.Create(context.Background(), filepath.Join(work, "movie.mp4"), metainfo.CreateOptions{PieceLength: 64 << 10})
	if err != nil {
		log.Fatal(err)
	}
	seeder, _ := aiotorrent.NewClient(aiotorrent.Config{ListenAddr: "127.0.0.1:0", NoTrackers: true, NoDHT: true})
	st, _ := seeder.Add(mi)
	if err := st.Start(aiotorrent.WithDir(work)); err != nil {
		log.Fatal(err)
	}
	leecher, _ := aiotorrent.NewClient(aiotorrent.Config{ListenAddr: "127.0.0.1:0", NoTrackers: true, NoDHT: true})
	t, _ := leecher.Add(mi)
	t.AddPeers(seeder.Addr().(*net.TCPAddr).AddrPort())
	return t, content, func() { leecher.Close(); seeder.Close(); os.RemoveAll(work) }
}

// Read a file while it downloads, in memory only: the reader waits for
// the pieces it needs, and a seek moves what is fetched first.
func ExampleTorrent_NewReader() {
	t, content, cleanup := exampleSwarm()
	defer cleanup()

	r, err := t.NewReader(context.Background(), t.Files()[0], aiotorrent.InMemory(256<<10))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	head := make([]byte, 4)
	io.ReadFull(r, head)
	r.Seek(-4, io.SeekEnd)
	tail, _ := io.ReadAll(r)
	fmt.Println(bytes.Equal(head, content[:4]), bytes.Equal(tail, content[len(content)-4:]))
	// Output: true true
}

// Serve a torrent's files over HTTP while they download: a video player
// pointed at the file's URL plays it and seeks with Range requests.
func ExampleTorrent_Stream() {
	t, content, cleanup := exampleSwarm()
	defer cleanup()

	ctx, stop := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		// WithAddr("127.0.0.1:0") picks a free port; the default is
		// 127.0.0.1:8080.
		done <- t.Stream(ctx, t.Files()[0], aiotorrent.WithAddr("127.0.0.1:0"),
			aiotorrent.OnServe(func(url string) { urls <- url }))
	}()
	url := <-urls

	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Range", "bytes=1000-1009")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("Content-Type"), bytes.Equal(body, content[1000:1010]))

	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// Output: 206 Partial Content video/mp4 true
}
