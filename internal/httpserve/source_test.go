package httpserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testFile is a file of a testSource: data in memory, or size generated
// bytes (genByte) when data is nil.
type testFile struct {
	File
	data []byte
	// blockAt, when >= 0, makes reads at or past this offset block until
	// the request's context is done, as a torrent reader waiting for a
	// piece no peer sends.
	blockAt int64
}

// testSource is a Source over testFiles that counts readers.
type testSource struct {
	name    string
	id      string
	files   []*testFile
	openErr error
	// progress, if not nil, is Source.Progress.
	progress func(int) int64

	opens, closes atomic.Int64
	bad           atomic.Int64 // reads or closes after Close

	mu        sync.Mutex
	readStart []int64 // guarded by mu: offset of each reader's first read
}

func (s *testSource) source() Source {
	src := Source{Name: s.name, ID: s.id, Open: s.open, Progress: s.progress}
	for _, f := range s.files {
		src.Files = append(src.Files, f.File)
	}
	return src
}

func (s *testSource) open(ctx context.Context, index int) (io.ReadSeekCloser, error) {
	if s.openErr != nil {
		return nil, s.openErr
	}
	for _, f := range s.files {
		if f.Index == index {
			s.opens.Add(1)
			return &testReader{ctx: ctx, f: f, src: s, first: true}, nil
		}
	}
	return nil, errors.New("no such file")
}

// waitReleased fails t unless every opened reader is closed within a few
// seconds, and no reader was used after Close.
func (s *testSource) waitReleased(t *testing.T) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool { return s.closes.Load() == s.opens.Load() },
		func() string {
			return fmt.Sprintf("readers not closed: %d opens, %d closes", s.opens.Load(), s.closes.Load())
		})
	if n := s.bad.Load(); n > 0 {
		t.Errorf("%d reads or closes after Close", n)
	}
}

type testReader struct {
	ctx    context.Context
	f      *testFile
	src    *testSource
	off    int64
	first  bool
	closed atomic.Bool
}

func (r *testReader) Read(p []byte) (int, error) {
	if r.closed.Load() {
		r.src.bad.Add(1)
		return 0, errors.New("read after close")
	}
	if r.first {
		r.first = false
		r.src.mu.Lock()
		r.src.readStart = append(r.src.readStart, r.off)
		r.src.mu.Unlock()
	}
	if r.off >= r.f.Length {
		return 0, io.EOF
	}
	if b := r.f.blockAt; b >= 0 && r.off >= b {
		<-r.ctx.Done()
		return 0, r.ctx.Err()
	}
	end := r.f.Length
	if b := r.f.blockAt; b >= 0 && b < end {
		end = b
	}
	if int64(len(p)) > end-r.off {
		p = p[:end-r.off]
	}
	if r.f.data != nil {
		copy(p, r.f.data[r.off:])
	} else {
		for i := range p {
			p[i] = genByte(r.off + int64(i))
		}
	}
	r.off += int64(len(p))
	return len(p), nil
}

func (r *testReader) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += r.off
	case io.SeekEnd:
		off += r.f.Length
	default:
		return 0, errors.New("bad whence")
	}
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	r.off = off
	return off, nil
}

func (r *testReader) Close() error {
	if r.closed.Swap(true) {
		r.src.bad.Add(1)
		return errors.New("closed twice")
	}
	r.src.closes.Add(1)
	return nil
}

// genByte is the content of generated files at offset off.
func genByte(off int64) byte { return byte(off ^ off>>8 ^ off>>16) }

// randomBytes returns n pseudo-random bytes, the same for the same seed.
func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// memFile returns a testFile of index i holding data.
func memFile(i int, path string, data []byte) *testFile {
	return &testFile{File: File{Index: i, Path: path, Length: int64(len(data))}, data: data, blockAt: -1}
}

// eventually polls cond until it holds or d passes, then fails t with
// msg().
func eventually(t *testing.T, d time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkGoroutines fails t unless the number of goroutines falls back to
// at most base (plus a small slack for runtime helpers) within a few
// seconds.
func checkGoroutines(t *testing.T, base int) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool { return runtime.NumGoroutine() <= base+2 },
		func() string {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Sprintf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), base, buf)
		})
}
