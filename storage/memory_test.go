package storage

import (
	"bytes"
	"sync"
	"testing"
)

func TestMemoryRoundTrip(t *testing.T) {
	for _, tc := range layouts {
		t.Run(tc.name, func(t *testing.T) {
			testRoundTrip(t, NewMemory(tc.info), tc.info, content(tc.info, 1))
		})
	}
}

func TestMemoryEdges(t *testing.T) {
	for _, tc := range layouts {
		t.Run(tc.name, func(t *testing.T) {
			testEdges(t, NewMemory(tc.info), tc.info, content(tc.info, 1))
		})
	}
}

func TestMemoryPaddingDropped(t *testing.T) {
	testPaddingDropped(t, NewMemory(layouts[3].info), layouts[3].info)
}

func TestMemoryClosed(t *testing.T) {
	testClosed(t, NewMemory(layouts[3].info))
}

func TestMemoryReadMissing(t *testing.T) {
	info := selectionInfo // 1 KiB pieces; padding [1500, 2048) and [6249, 6349)
	m := NewMemory(info)
	tests := []struct {
		name     string
		off, n   int64
		wantMiss bool
	}{
		{"first piece", 0, 100, true},
		{"padding only", 1500, 548, false},
		{"a file and padding", 1000, 600, true},
		{"written piece", 2048, 1024, false},
		{"written piece and the next", 2048, 1500, true},
		{"unwritten part of a written piece", 5120, 1024, false},
	}
	data := content(info, 8)
	if _, err := m.WriteAt(data[2048:3072], 2048); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WriteAt(data[5120:5130], 5120); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, tc.n)
			_, err := m.ReadAt(buf, tc.off)
			if isMissing(err) != tc.wantMiss {
				t.Errorf("ReadAt(%d bytes at %d): %v, want missing %v", tc.n, tc.off, err, tc.wantMiss)
			}
		})
	}
	t.Run("partly written piece", func(t *testing.T) {
		buf := make([]byte, 1024)
		if _, err := m.ReadAt(buf, 5120); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:10], data[5120:5130]) || !bytes.Equal(buf[10:], make([]byte, 1014)) {
			t.Error("partly written piece: want the bytes written, then zeros")
		}
	})
}

func TestMemoryConcurrent(t *testing.T) {
	info := layouts[4].info
	data := content(info, 2)
	m := NewMemory(info)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < info.NumPieces(); i += 4 {
				off, p := piece(info, data, i)
				if _, err := m.WriteAt(p, off); err != nil {
					t.Error(err)
				}
				buf := make([]byte, len(p))
				if _, err := m.ReadAt(buf, off); err != nil || !bytes.Equal(buf, p) {
					t.Errorf("piece %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
}

func TestNewMemoryPanics(t *testing.T) {
	info := selectionInfo
	bad := *info
	bad.Length++
	defer func() {
		if recover() == nil {
			t.Error("NewMemory of an inconsistent info did not panic")
		}
	}()
	NewMemory(&bad)
}
