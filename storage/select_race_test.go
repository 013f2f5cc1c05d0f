package storage

import (
	"bytes"
	"testing"
)

// The engine writes a verified piece block by block from a hash goroutine
// (engine.verify) while the loop may run Select for a file that shares the
// piece (DownloadFiles -> selectMore -> Select(f, picker.Have)). The piece
// is not verified yet, so Select does not copy it; the blocks written before
// Select went to the parts file and are lost for the newly selected file.
func TestSelectDuringPieceWrite(t *testing.T) {
	// Piece 0 (32 KiB) = a[0:20K] + b[0:12K]; piece 1 = b[12K:30K].
	info := makeInfo("t", 32<<10, true, tf{"a", 20 << 10, false, ""}, tf{"b", 30 << 10, false, ""})
	data := content(info, 3)
	dir := t.TempDir()
	s := newFile(t, dir, info, FileOptions{Selected: []bool{true, false}})

	// Hash goroutine writes piece 0 in 16 KiB blocks. Block 1 holds
	// a[16K:20K] and b[0:12K]: b is unselected, so those bytes go to the
	// parts file.
	if _, err := s.WriteAt(data[16<<10:32<<10], 16<<10); err != nil {
		t.Fatal(err)
	}
	// Meanwhile the loop selects b: piece 0 is not verified yet.
	if err := s.Select(1, func(int) bool { return false }); err != nil {
		t.Fatal(err)
	}
	// The hash goroutine finishes piece 0; the loop marks it verified.
	if _, err := s.WriteAt(data[:16<<10], 0); err != nil {
		t.Fatal(err)
	}
	// Piece 1 (all of it b) is downloaded normally.
	if _, err := s.WriteAt(data[32<<10:], 32<<10); err != nil {
		t.Fatal(err)
	}
	if err := s.FileComplete(1); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 32<<10)
	_, err := s.ReadAt(got, 0)
	if err != nil || !bytes.Equal(got, data[:32<<10]) {
		t.Fatalf("piece 0, verified and written, reads back wrong (err %v): b's first 12 KiB stayed in the parts file", err)
	}
}
