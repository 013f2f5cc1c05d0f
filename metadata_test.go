package aiotorrent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/metainfo"
	"github.com/aiotorrent/aiotorrent/peer"
)

// TestMagnetFromOwnSeeder: a magnet link with only the info hash, its
// seeder given by AddPeers: the metadata comes over ut_metadata, checks
// out, and the download completes.
func TestMagnetFromOwnSeeder(t *testing.T) {
	mi, src := makeTorrent(t, "magnet", 16<<10, testFile{"a", 300 << 10}, testFile{"b/c", 2 << 20})
	seeder := startSeeder(t, mi, src)
	c := stateClient(t, t.TempDir())
	tor, err := c.Open(t.Context(), "magnet:?xt=urn:btih:"+mi.InfoHash.String())
	if err != nil {
		t.Fatal(err)
	}
	if tor.HasMetadata() {
		t.Fatal("metadata before any peer")
	}
	tor.AddPeers(clientAddr(seeder))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := tor.WaitMetadata(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("metadata (%d bytes) in %v", len(mi.InfoBytes), time.Since(start))
	if tor.Name() != "magnet" || len(tor.Files()) != 2 || string(tor.MetaInfo().InfoBytes) != string(mi.InfoBytes) {
		t.Fatalf("metadata: name %q, %d files", tor.Name(), len(tor.Files()))
	}
	dir := t.TempDir()
	if err := tor.DownloadAll(ctx, WithDir(dir)); err != nil {
		t.Fatal(err)
	}
	sameTree(t, mi, dir, src)
}

// fakeMetaPeer is a peer that offers the torrent's metadata and answers
// every request with what serve returns for the piece (nil: a reject).
func fakeMetaPeer(t *testing.T, mi *metainfo.MetaInfo, size int64, serve func(piece int) []byte) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				if _, err := peer.ReadHandshake(conn); err != nil {
					return
				}
				h := &peer.Handshake{InfoHash: mi.InfoHash, PeerID: NewPeerID()}
				h.Reserved.SetExtended()
				if peer.WriteHandshake(conn, h) != nil {
					return
				}
				const theirID = 7
				hs := peer.ExtHandshake{M: map[string]int{peer.ExtMetadata: theirID}, MetadataSize: size}
				if size > peer.MaxMetadataSize {
					hs.MetadataSize = 0
				}
				payload := hs.Append(nil)
				if size > peer.MaxMetadataSize { // what the codec will not write
					payload = []byte(fmt.Sprintf("d1:md11:ut_metadatai%dee13:metadata_sizei%dee", theirID, size))
				}
				conn.Write(peer.AppendMessage(nil, &peer.Message{Type: peer.Extended, ExtendedID: 0, Payload: payload}))
				r := peer.NewReader(conn, peer.Limits{})
				var m peer.Message
				for r.ReadMessage(&m) == nil {
					if m.Type != peer.Extended || m.ExtendedID != theirID {
						continue
					}
					req, err := peer.ParseMetadataMsg(m.Payload)
					if err != nil || req.Type != peer.MetadataRequest {
						continue
					}
					reply := peer.MetadataMsg{Type: peer.MetadataReject, Piece: req.Piece}
					if data := serve(req.Piece); data != nil {
						reply = peer.MetadataMsg{Type: peer.MetadataData, Piece: req.Piece, TotalSize: size, Data: data}
					}
					conn.Write(peer.AppendMessage(nil, &peer.Message{Type: peer.Extended, ExtendedID: utMetadataID, Payload: peer.AppendMetadataMsg(nil, reply)}))
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// TestMagnetLiars: among the peers, one serves metadata that does not hash
// right, one claims 1 GiB of metadata, one rejects every request; the
// honest seeder's metadata is the one taken, and the download completes.
func TestMagnetLiars(t *testing.T) {
	mi, src := makeTorrent(t, "liars", 16<<10, testFile{"a", 24 << 20}) // 1536 pieces: 2 metadata pieces
	size := int64(len(mi.InfoBytes))
	if peer.MetadataPieces(size) < 2 {
		t.Fatalf("metadata of %d bytes: want at least 2 pieces", size)
	}
	piece := func(k int) []byte {
		off := k * peer.MetadataPieceSize
		return mi.InfoBytes[off : off+peer.MetadataPieceLen(size, k)]
	}
	liar := fakeMetaPeer(t, mi, size, func(k int) []byte {
		b := slices.Clone(piece(k))
		b[len(b)/2] ^= 1
		return b
	})
	huge := fakeMetaPeer(t, mi, 1<<30, func(int) []byte { return nil })
	refuser := fakeMetaPeer(t, mi, size, func(int) []byte { return nil })
	seeder := startSeeder(t, mi, src)

	logs := &syncBuffer{}
	c := seedClient(t, Config{StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	tor, err := c.Open(t.Context(), "magnet:?xt=urn:btih:"+mi.InfoHash.String())
	if err != nil {
		t.Fatal(err)
	}
	tor.AddPeers(liar, huge, refuser, clientAddr(seeder))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := tor.WaitMetadata(ctx); err != nil {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "metaFetch") {
				t.Log(g)
			}
		}
		t.Fatal(err)
	}
	if string(tor.MetaInfo().InfoBytes) != string(mi.InfoBytes) {
		t.Fatal("metadata differs")
	}
	dir := t.TempDir()
	if err := tor.DownloadAll(ctx, WithDir(dir)); err != nil {
		t.Fatal(err)
	}
	sameTree(t, mi, dir, src)
}

// syncBuffer is a bytes.Buffer safe for concurrent writes, for logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// countingProxy forwards connections to target and counts them.
func countingProxy(t *testing.T, target netip.AddrPort) (netip.AddrPort, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			out, err := net.Dial("tcp", target.String())
			if err != nil {
				in.Close()
				continue
			}
			wg.Go(func() { io.Copy(out, in); out.Close() })
			wg.Go(func() { io.Copy(in, out); in.Close() })
		}
	})
	return ln.Addr().(*net.TCPAddr).AddrPort(), &n
}

// TestMagnetKeepsConnection: the connection the metadata came on carries
// the download too: the seeder is connected to once.
func TestMagnetKeepsConnection(t *testing.T) {
	mi, src := makeTorrent(t, "keep", 16<<10, testFile{"a", 1 << 20})
	seeder := startSeeder(t, mi, src)
	proxy, conns := countingProxy(t, clientAddr(seeder))
	c := stateClient(t, t.TempDir())
	tor, err := c.Open(t.Context(), "magnet:?xt=urn:btih:"+mi.InfoHash.String())
	if err != nil {
		t.Fatal(err)
	}
	tor.AddPeers(proxy)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	if err := tor.DownloadAll(ctx, WithDir(dir)); err != nil {
		t.Fatal(err)
	}
	sameTree(t, mi, dir, src)
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections to the seeder for the metadata and the download, want 1", n)
	}
}

// TestMagnetIncomingBeforeMetadata: a magnet link's torrent that knows no
// peer takes the metadata from a peer that connects to it, and downloads
// on that connection.
func TestMagnetIncomingBeforeMetadata(t *testing.T) {
	mi, src := makeTorrent(t, "incoming", 16<<10, testFile{"a", 1 << 20})
	seeder := startSeeder(t, mi, src)
	c := stateClient(t, t.TempDir())
	tor, err := c.Open(t.Context(), "magnet:?xt=urn:btih:"+mi.InfoHash.String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	dir := t.TempDir()
	go func() { done <- tor.DownloadAll(ctx, WithDir(dir)) }()
	for tor.metaFetching() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	ts := seeder.Torrents()[0]
	ts.AddPeers(clientAddr(c)) // the seeder connects to the leecher
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sameTree(t, mi, dir, src)
	for _, p := range tor.Stats().PeerList {
		if p.Addr == clientAddr(seeder) {
			t.Fatal("the leecher dialled the seeder, which it was never told of")
		}
	}
}
