package aiotorrent

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/resume"
	"github.com/aiotorrent/aiotorrent/storage"
)

// smallDisk is a storage that holds only so many bytes: past them, writes
// fail with ENOSPC, as a full disk does, until room is made.
type smallDisk struct {
	*storage.File
	mu     sync.Mutex
	room   int64 // bytes that may still be written; < 0: no limit
	failed int   // writes refused
}

func (d *smallDisk) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	if d.room >= 0 && int64(len(p)) > d.room {
		d.failed++
		d.mu.Unlock()
		return 0, fmt.Errorf("storage: write resume/a: %w", syscall.ENOSPC)
	}
	if d.room >= 0 {
		d.room -= int64(len(p))
	}
	d.mu.Unlock()
	return d.File.WriteAt(p, off)
}

func (d *smallDisk) setRoom(n int64) {
	d.mu.Lock()
	d.room = n
	d.mu.Unlock()
}

// TestDiskFullPauses: a download whose disk fills fails with a clear
// error and pauses: it cancels what it asked for and asks nothing more,
// keeps what it verified (in the resume record too), still serves it, and
// completes once there is room again, in the same client and in a new
// one.
func TestDiskFullPauses(t *testing.T) {
	mi, src, seeder := resumeTorrent(t, 0)
	pl := mi.Info.PieceLength
	n := mi.Info.NumPieces()
	state, dir := t.TempDir(), t.TempDir()
	c := stateClient(t, state)
	var disk *smallDisk
	c.wrapStore = func(f *storage.File) storage.Storage {
		disk = &smallDisk{File: f, room: 20 * pl}
		return disk
	}
	tor, _ := c.Add(mi)
	tor.AddPeers(clientAddr(seeder))
	err := tor.DownloadAll(t.Context(), WithDir(dir))
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "paused") {
		t.Fatalf("download onto a full disk: %v; want a paused download for lack of space", err)
	}
	t.Logf("error: %v", err)

	// Paused: nothing more comes from the seeder once what was on the
	// wire has arrived.
	time.Sleep(300 * time.Millisecond)
	s0 := tor.Stats()
	time.Sleep(time.Second)
	s1 := tor.Stats()
	if s1.Downloaded != s0.Downloaded {
		t.Errorf("paused download still fetching: %d then %d bytes", s0.Downloaded, s1.Downloaded)
	}
	if !s1.Running || s1.Err == nil {
		t.Errorf("stats %+v: want the torrent running (serving) with its error", s1)
	}
	if wasted := s1.Downloaded - int64(s1.PiecesVerified)*pl; wasted > c.cfg.BufferBytes+4*pl {
		t.Errorf("fetched %d bytes for %d verified pieces: %d more than could be stored", s1.Downloaded, s1.PiecesVerified, wasted)
	}
	if s1.PiecesVerified < 19 || s1.PiecesVerified > 20 {
		t.Errorf("%d pieces verified, want the 20 that fit (19 when a write spans the limit)", s1.PiecesVerified)
	}
	rec, err := resume.Load(state, mi.InfoHash)
	if err != nil || rec.Pieces.Count() != s1.PiecesVerified {
		t.Fatalf("record after the failure: %v, %d pieces; want the %d pieces verified", err, rec.Pieces.Count(), s1.PiecesVerified)
	}
	fetched := s1.Downloaded

	// Room again: the same torrent completes.
	disk.setRoom(-1)
	if err := tor.DownloadAll(t.Context(), WithDir(dir)); err != nil {
		t.Fatalf("after room was made: %v", err)
	}
	if s := tor.Stats(); s.Downloaded-fetched > int64(n-s1.PiecesVerified)*pl {
		t.Errorf("resumed download fetched %d bytes, want at most the %d missing", s.Downloaded-fetched, int64(n-s1.PiecesVerified)*pl)
	}
	sameTree(t, mi, dir, src)
}

// TestDiskFullResumesInNewClient: the pieces verified before the disk
// filled are kept across a restart, from the resume record.
func TestDiskFullResumesInNewClient(t *testing.T) {
	mi, src, seeder := resumeTorrent(t, 0)
	pl := mi.Info.PieceLength
	n := mi.Info.NumPieces()
	state, dir := t.TempDir(), t.TempDir()
	c := stateClient(t, state)
	c.wrapStore = func(f *storage.File) storage.Storage { return &smallDisk{File: f, room: 30 * pl} }
	tor, _ := c.Add(mi)
	tor.AddPeers(clientAddr(seeder))
	if err := tor.DownloadAll(t.Context(), WithDir(dir)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("download onto a full disk: %v", err)
	}
	had := tor.Stats().PiecesVerified
	c.Close()

	c2 := stateClient(t, state)
	tor2, _ := c2.Add(mi)
	tor2.AddPeers(clientAddr(seeder))
	var checks checkLog
	if err := tor2.DownloadAll(t.Context(), WithDir(dir), OnCheck(checks.add)); err != nil {
		t.Fatal(err)
	}
	// Pieces whose write was under way as the disk filled may have made
	// it too; every one is in the record.
	last := checks.last(t)
	if last.Verified < had || last.Resumed != last.Verified {
		t.Errorf("check after the restart %+v, want at least the %d pieces verified before, all from the record", last, had)
	}
	had = last.Verified
	if s := tor2.Stats(); s.Downloaded > int64(n-had)*pl {
		t.Errorf("fetched %d bytes after the restart, want at most the %d missing", s.Downloaded, int64(n-had)*pl)
	}
	sameTree(t, mi, dir, src)
}
