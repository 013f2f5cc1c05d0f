package aiotorrent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aiotorrent/aiotorrent/internal/resume"
	"github.com/aiotorrent/aiotorrent/metainfo"
)

// stateClient returns a client on loopback, without trackers, keeping its
// resume records in stateDir.
func stateClient(t *testing.T, stateDir string) *Client {
	t.Helper()
	return seedClient(t, Config{StateDir: stateDir})
}

// checkLog records what OnCheck reports.
type checkLog struct {
	mu    sync.Mutex
	calls []CheckProgress
}

func (l *checkLog) add(p CheckProgress) {
	l.mu.Lock()
	l.calls = append(l.calls, p)
	l.mu.Unlock()
}

func (l *checkLog) last(t *testing.T) CheckProgress {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.calls) == 0 || !l.calls[len(l.calls)-1].Done {
		t.Fatalf("check progress %+v: no last call", l.calls)
	}
	return l.calls[len(l.calls)-1]
}

// resumeTorrent is a torrent of two files sharing a piece, and a seeder
// of it, slowed down so that a download can be stopped half way.
func resumeTorrent(t *testing.T, upload int64) (mi *metainfo.MetaInfo, src string, seeder *Client) {
	t.Helper()
	const pl = 16 << 10
	mi, src = makeTorrent(t, "resume", pl, testFile{"a", 40*pl + 123}, testFile{"b", 30 * pl})
	seeder = seedClient(t, Config{UploadLimit: upload, StateDir: "-"})
	tor, err := seeder.Add(mi)
	if err != nil {
		t.Fatal(err)
	}
	if err := tor.Start(WithDir(src)); err != nil {
		t.Fatal(err)
	}
	return mi, src, seeder
}

// downloadOnce downloads mi from the seeder into dir in a new client
// keeping its records in state, and closes that client.
func downloadOnce(t *testing.T, state string, mi *metainfo.MetaInfo, dir string, seeder *Client) {
	t.Helper()
	c := stateClient(t, state)
	tor, _ := c.Add(mi)
	tor.AddPeers(clientAddr(seeder))
	if err := tor.DownloadAll(t.Context(), WithDir(dir)); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func sameTree(t *testing.T, mi *metainfo.MetaInfo, got, want string) {
	t.Helper()
	for _, f := range mi.Info.Files {
		p := filepath.Join(f.Path...)
		sameFile(t, filepath.Join(got, p), filepath.Join(want, p))
	}
}

// TestResumeContinues: a download stopped half way continues in a new
// client: the check takes every piece from the record without hashing
// any, the strategy of the first download is kept, and only the pieces
// missing are fetched.
func TestResumeContinues(t *testing.T) {
	mi, src, seeder := resumeTorrent(t, 1<<20)
	state, dir := t.TempDir(), t.TempDir()
	pl := mi.Info.PieceLength
	n := mi.Info.NumPieces()

	c1 := stateClient(t, state)
	tor1, _ := c1.Add(mi)
	tor1.AddPeers(clientAddr(seeder))
	ctx, cancel := context.WithCancel(t.Context())
	got := 0
	err := tor1.DownloadAll(ctx, WithDir(dir), WithStrategy(Sequential), OnPiece(func(Piece) {
		if got++; got == n/2 {
			cancel()
		}
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped download: %v", err)
	}
	if tor1.Stats().Running {
		t.Fatal("torrent still running after its download was stopped")
	}
	rec, err := resume.Load(state, mi.InfoHash)
	if err != nil {
		t.Fatalf("no record after the stop: %v", err)
	}
	saved := rec.Pieces.Count()
	if saved < n/2 || saved == n || rec.Strategy != "sequential" {
		t.Fatalf("record holds %d of %d pieces, strategy %q; want at least %d and not all, sequential", saved, n, rec.Strategy, n/2)
	}
	c1.Close()

	c2 := stateClient(t, state)
	tor2, _ := c2.Add(mi)
	tor2.AddPeers(clientAddr(seeder))
	var checks checkLog
	var order []int
	if err := tor2.DownloadAll(t.Context(), WithDir(dir), OnCheck(checks.add), OnPiece(func(p Piece) { order = append(order, p.Index) })); err != nil {
		t.Fatal(err)
	}
	last := checks.last(t)
	if last.Resumed != saved || last.Verified != saved || last.Checked != n {
		t.Errorf("check %+v; want all %d pieces settled by the record, %d of them verified", last, n, saved)
	}
	if !slices.IsSorted(order) || len(order) != n {
		t.Errorf("pieces reported in the order %v: the record's sequential strategy was not kept", order)
	}
	if s := tor2.Stats(); s.Downloaded > int64(n-saved)*pl {
		t.Errorf("fetched %d bytes, want at most the %d of the %d missing pieces", s.Downloaded, int64(n-saved)*pl, n-saved)
	}
	sameTree(t, mi, dir, src)
	tor2.Close()
	if rec, err = resume.Load(state, mi.InfoHash); err != nil || !rec.Pieces.Full() {
		t.Fatalf("record after the download: %v, %d of %d pieces", err, rec.Pieces.Count(), n)
	}

	// Seeding it now hashes nothing either.
	c3 := stateClient(t, state)
	tor3, _ := c3.Add(mi)
	checks = checkLog{}
	ctx, cancel = context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := tor3.Seed(ctx, WithDir(dir), OnCheck(checks.add)); err != nil {
		t.Fatal(err)
	}
	if last := checks.last(t); last.Resumed != n {
		t.Errorf("seed check %+v, want all %d pieces from the record", last, n)
	}
}

// TestResumeDistrustsChanges: data changed behind a record is hashed
// again, whatever the change: new bytes of the same size with a newer
// time, a file cut short, a file deleted. Pieces of the files left as
// they were are trusted. New bytes with the old time restored are trusted
// blindly, until Verify withdraws the damaged pieces from the record.
func TestResumeDistrustsChanges(t *testing.T) {
	mi, src, seeder := resumeTorrent(t, 0)
	pl := mi.Info.PieceLength
	n := mi.Info.NumPieces()
	aPieces := 41 // file a: pieces 0-40, 40 shared with b
	cases := []struct {
		name    string
		change  func(t *testing.T, a string)
		resumed int   // pieces trusted
		missing []int // pieces found bad
	}{
		{"same size, newer time", func(t *testing.T, a string) {
			flip(t, a, 3*pl+7)
			later(t, a, time.Second)
		}, n - aPieces, []int{3}},
		{"cut short", func(t *testing.T, a string) {
			if err := os.Truncate(a, 38*pl); err != nil {
				t.Fatal(err)
			}
		}, n - aPieces, []int{38, 39, 40}},
		{"deleted", func(t *testing.T, a string) {
			if err := os.Remove(a); err != nil {
				t.Fatal(err)
			}
		}, n - aPieces, seq(0, aPieces)},
		{"same size, same time", func(t *testing.T, a string) {
			st, _ := os.Stat(a)
			flip(t, a, 5*pl)
			if err := os.Chtimes(a, st.ModTime(), st.ModTime()); err != nil {
				t.Fatal(err)
			}
		}, n, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			state, dir := t.TempDir(), t.TempDir()
			downloadOnce(t, state, mi, dir, seeder)
			a := filepath.Join(dir, "resume", "a")
			tc.change(t, a)

			c2 := stateClient(t, state)
			tor2, _ := c2.Add(mi)
			var checks checkLog
			if err := tor2.Start(WithDir(dir), OnCheck(checks.add)); err != nil {
				t.Fatal(err)
			}
			last := checks.last(t)
			if last.Resumed != tc.resumed || last.Verified != n-len(tc.missing) {
				t.Errorf("check %+v; want %d pieces from the record and %d verified", last, tc.resumed, n-len(tc.missing))
			}
			tor2.Close()
			if tc.missing == nil {
				// Trusted blindly: Verify finds the damage and takes the
				// piece out of the record.
				tv, _ := c2.Add(mi)
				r, err := tv.Verify(t.Context(), WithDir(dir))
				if err != nil || !slices.Equal(r.Bad, []int{5}) {
					t.Fatalf("verify: %v, bad %v, want [5]", err, r.Bad)
				}
				tc.missing = r.Bad
			}
			c3 := stateClient(t, state)
			tor3, _ := c3.Add(mi)
			tor3.AddPeers(clientAddr(seeder))
			if err := tor3.DownloadAll(t.Context(), WithDir(dir)); err != nil {
				t.Fatal(err)
			}
			if s := tor3.Stats(); s.Downloaded > int64(len(tc.missing))*pl {
				t.Errorf("fetched %d bytes, want at most the %d of pieces %v", s.Downloaded, int64(len(tc.missing))*pl, tc.missing)
			}
			sameTree(t, mi, dir, src)
		})
	}
}

// TestResumeStaleRecord is what a crash leaves: a record written before
// the last pieces, whose file has been written since. That file is hashed
// again and every piece in it is found; the others are trusted.
func TestResumeStaleRecord(t *testing.T) {
	mi, src, seeder := resumeTorrent(t, 0)
	n := mi.Info.NumPieces()
	state, dir := t.TempDir(), t.TempDir()
	downloadOnce(t, state, mi, dir, seeder)
	rec, err := resume.Load(state, mi.InfoHash)
	if err != nil {
		t.Fatal(err)
	}
	// As if saved before b's last 10 pieces were written: they are not
	// in it, and b looked older.
	for i := n - 10; i < n; i++ {
		rec.Pieces.Clear(i)
	}
	rec.Files[1].Stamp.ModTime = rec.Files[1].Stamp.ModTime.Add(-time.Second)
	if err := resume.Save(state, rec); err != nil {
		t.Fatal(err)
	}

	c2 := stateClient(t, state)
	tor2, _ := c2.Add(mi)
	var checks checkLog
	if err := tor2.Start(WithDir(dir), OnCheck(checks.add)); err != nil {
		t.Fatal(err)
	}
	if last := checks.last(t); last.Verified != n || last.Resumed != 40 {
		t.Errorf("check %+v; want every piece, the 40 of a alone from the record", last)
	}
	sameTree(t, mi, dir, src)
}

// TestResumeOff: with StateDir "-" no record is written, and a start
// hashes everything.
func TestResumeOff(t *testing.T) {
	mi, _, seeder := resumeTorrent(t, 0)
	dir := t.TempDir()
	c := seedClient(t, Config{StateDir: "-"})
	tor, _ := c.Add(mi)
	tor.AddPeers(clientAddr(seeder))
	if err := tor.DownloadAll(t.Context(), WithDir(dir)); err != nil {
		t.Fatal(err)
	}
	tor.Close()
	def, err := DefaultStateDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resume.Load(def, mi.InfoHash); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("record in the default folder with StateDir \"-\": %v", err)
	}
	tor, _ = c.Add(mi)
	var checks checkLog
	if err := tor.Start(WithDir(dir), OnCheck(checks.add)); err != nil {
		t.Fatal(err)
	}
	if last := checks.last(t); last.Resumed != 0 || last.Verified != mi.Info.NumPieces() {
		t.Errorf("check %+v, want every piece hashed", last)
	}
}

func flip(t *testing.T, name string, off int64) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// later moves a file's modification time forward by d.
func later(t *testing.T, name string, d time.Duration) {
	t.Helper()
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(name, st.ModTime().Add(d), st.ModTime().Add(d)); err != nil {
		t.Fatal(err)
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// TestResumeKeepsMetadata: a torrent's metainfo is kept beside its record,
// so that a magnet link of it opens with its metadata and continues the
// download with no metadata exchange; a kept file that is not the
// torrent's is not used.
func TestResumeKeepsMetadata(t *testing.T) {
	mi, src, seeder := resumeTorrent(t, 0)
	state, dir := t.TempDir(), t.TempDir()
	downloadOnce(t, state, mi, dir, seeder)
	rec, err := resume.Load(state, mi.InfoHash)
	if err != nil || rec.Metadata != resume.MetadataPath(state, mi.InfoHash) {
		t.Fatalf("record: %v, metadata at %q", err, rec.Metadata)
	}

	magnet := "magnet:?xt=urn:btih:" + mi.InfoHash.String() + "&dn=other&tr=http%3A%2F%2F127.0.0.1%3A1%2Fannounce"
	c2 := stateClient(t, state)
	tor2, err := c2.Open(t.Context(), magnet)
	if err != nil {
		t.Fatal(err)
	}
	if !tor2.HasMetadata() || tor2.Name() != "resume" || len(tor2.Files()) != 2 {
		t.Fatalf("magnet opened with metadata %v, name %q, %d files; want the kept metainfo", tor2.HasMetadata(), tor2.Name(), len(tor2.Files()))
	}
	if tr := tor2.Trackers(); len(tr) == 0 || tr[len(tr)-1][0] != "http://127.0.0.1:1/announce" {
		t.Errorf("trackers %v: want the magnet's tracker kept", tr)
	}
	var checks checkLog
	if err := tor2.DownloadAll(t.Context(), WithDir(dir), OnCheck(checks.add)); err != nil {
		t.Fatal(err)
	}
	if last := checks.last(t); last.Resumed != mi.Info.NumPieces() {
		t.Errorf("check %+v, want every piece from the record", last)
	}
	sameTree(t, mi, dir, src)

	// Another torrent's metainfo under this hash's name is refused.
	other, _ := makeTorrent(t, "other", 16<<10, testFile{"x", 1000})
	data, err := other.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(resume.MetadataPath(state, mi.InfoHash), data, 0o600); err != nil {
		t.Fatal(err)
	}
	c3 := seedClient(t, Config{StateDir: state, NoTrackers: true})
	tor3, err := c3.Open(t.Context(), magnet)
	if err != nil {
		t.Fatal(err)
	}
	if tor3.HasMetadata() {
		t.Error("a kept metainfo of another torrent was used")
	}
}

// TestResumeRacyFile: pieces written just after a record was taken, under
// the same file stamp, are not in the record. A file the record marks
// racy has those pieces hashed at the next start; one it does not is
// trusted as recorded, the pieces counted missing.
func TestResumeRacyFile(t *testing.T) {
	mi, _, seeder := resumeTorrent(t, 0)
	n := mi.Info.NumPieces()
	for _, racy := range []bool{true, false} {
		state, dir := t.TempDir(), t.TempDir()
		downloadOnce(t, state, mi, dir, seeder)
		rec, err := resume.Load(state, mi.InfoHash)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Files[0].Racy || rec.Files[1].Racy {
			t.Fatalf("the record written at the stop marks files racy: %+v", rec.Files)
		}
		for i := n - 10; i < n; i++ { // b's last pieces
			rec.Pieces.Clear(i)
		}
		rec.Files[1].Racy = racy
		if err := resume.Save(state, rec); err != nil {
			t.Fatal(err)
		}
		c := stateClient(t, state)
		tor, _ := c.Add(mi)
		var checks checkLog
		if err := tor.Start(WithDir(dir), OnCheck(checks.add)); err != nil {
			t.Fatal(err)
		}
		last := checks.last(t)
		want := CheckProgress{Pieces: n, Checked: n, Verified: n, Resumed: n - 10, Done: true}
		if !racy {
			want.Verified = n - 10
		}
		if last != want {
			t.Errorf("racy %v: check %+v, want %+v", racy, last, want)
		}
		c.Close()
	}
}

// TestResumeFileDeletedWhileRunning: a file deleted while the torrent ran
// is recorded as missing at the stop, with its pieces still listed; the
// next start checks them rather than trust them.
func TestResumeFileDeletedWhileRunning(t *testing.T) {
	mi, _, seeder := resumeTorrent(t, 0)
	n := mi.Info.NumPieces()
	state, dir := t.TempDir(), t.TempDir()
	downloadOnce(t, state, mi, dir, seeder)
	c := stateClient(t, state)
	tor, _ := c.Add(mi)
	if err := tor.Start(WithDir(dir)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "resume", "a")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c2 := stateClient(t, state)
	tor2, _ := c2.Add(mi)
	var checks checkLog
	if err := tor2.Start(WithDir(dir), OnCheck(checks.add)); err != nil {
		t.Fatal(err)
	}
	if last := checks.last(t); last.Verified != n-41 || last.Resumed != n-41 {
		t.Errorf("check %+v, want the %d pieces of b alone, from the record", last, n-41)
	}
}

// TestVerifyLeavesRunningRecord: Verify of a torrent running with the
// same state folder reports the damage but leaves the record to the
// running torrent; once it stops, Verify withdraws the damaged pieces.
func TestVerifyLeavesRunningRecord(t *testing.T) {
	mi, _, seeder := resumeTorrent(t, 0)
	n := mi.Info.NumPieces()
	state, dir := t.TempDir(), t.TempDir()
	downloadOnce(t, state, mi, dir, seeder)
	a := filepath.Join(dir, "resume", "a")
	st, _ := os.Stat(a)
	flip(t, a, 0)
	os.Chtimes(a, st.ModTime(), st.ModTime())

	c := stateClient(t, state)
	running, _ := c.Add(mi)
	if err := running.Start(WithDir(dir)); err != nil {
		t.Fatal(err)
	}
	c2 := stateClient(t, state)
	tv, _ := c2.Add(mi)
	r, err := tv.Verify(t.Context(), WithDir(dir))
	if err != nil || !slices.Equal(r.Bad, []int{0}) || r.Withdrawn != nil || !errors.Is(r.RecordErr, resume.ErrLocked) {
		t.Fatalf("verify: %v, bad %v, withdrawn %v, record error %v; want the record left with ErrLocked", err, r.Bad, r.Withdrawn, r.RecordErr)
	}
	c.Close() // the running torrent writes its record as it stops
	if rec, err := resume.Load(state, mi.InfoHash); err != nil || rec.Pieces.Count() != n {
		t.Fatalf("record after the running torrent stopped: %v; want it as that torrent left it", err)
	}
	if r, err = tv.Verify(t.Context(), WithDir(dir)); err != nil || !slices.Equal(r.Bad, []int{0}) || !slices.Equal(r.Withdrawn, []int{0}) || r.RecordErr != nil {
		t.Fatalf("verify: %v, bad %v, withdrawn %v, record error %v", err, r.Bad, r.Withdrawn, r.RecordErr)
	}
	if rec, err := resume.Load(state, mi.InfoHash); err != nil || rec.Pieces.Has(0) || rec.Pieces.Count() != n-1 {
		t.Fatalf("record after verify: %v; want piece 0 withdrawn", err)
	}
}

// TestFilePriorities: the pieces of a high-priority file come first, and
// the priorities are kept in the resume record for the download that
// continues, unless that one sets its own.
func TestFilePriorities(t *testing.T) {
	mi, src, seeder := resumeTorrent(t, 0)
	state, dir := t.TempDir(), t.TempDir()
	c := stateClient(t, state)
	tor, _ := c.Add(mi)
	tor.AddPeers(clientAddr(seeder))
	files := tor.Files()
	if err := tor.SetFilePriority(files[1], High); err != nil {
		t.Fatal(err)
	}
	if err := tor.SetFilePriority(files[0], Priority(5)); err == nil {
		t.Error("priority 5 accepted")
	}
	if err := tor.SetFilePriority(File{Index: 9}, High); err == nil {
		t.Error("a file that does not exist accepted")
	}
	var order []int
	if err := tor.DownloadAll(t.Context(), WithDir(dir), OnPiece(func(p Piece) { order = append(order, p.Index) })); err != nil {
		t.Fatal(err)
	}
	// b is pieces 40-70 (40 shared with a): of the first 31 pieces
	// verified, at most the 10 of a fetched while the seeder choked us
	// (its allowed fast set, BEP 6) are not b's. Without priorities,
	// about 14 would be b's.
	first := 0
	for _, i := range order[:31] {
		if i >= 40 {
			first++
		}
	}
	if first < 21 {
		t.Errorf("%d of the first 31 pieces are b's, want at least 21: %v", first, order)
	}
	sameTree(t, mi, dir, src)
	c.Close()
	rec, err := resume.Load(state, mi.InfoHash)
	if err != nil || rec.Files[1].Priority != int8(High) || rec.Files[0].Priority != int8(Normal) {
		t.Fatalf("record: %v, %+v; want b high", err, rec.Files)
	}

	c2 := stateClient(t, state)
	tor2, _ := c2.Add(mi)
	if err := tor2.Start(WithDir(dir)); err != nil {
		t.Fatal(err)
	}
	if p := tor2.FilePriority(files[1]); p != High {
		t.Errorf("after the restart b is %v, want high from the record", p)
	}
	c2.Close()

	c3 := stateClient(t, state)
	tor3, _ := c3.Add(mi)
	tor3.SetFilePriority(files[0], Low)
	if err := tor3.Start(WithDir(dir)); err != nil {
		t.Fatal(err)
	}
	if a, b := tor3.FilePriority(files[0]), tor3.FilePriority(files[1]); a != Low || b != Normal {
		t.Errorf("priorities set before the start: a %v, b %v; want low and normal, not the record's", a, b)
	}
}
