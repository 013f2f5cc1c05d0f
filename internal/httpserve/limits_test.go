package httpserve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawGet sends a GET of target, exactly as written, on a new connection
// to addr and returns the response's status.
func rawGet(t *testing.T, addr, target string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// hardenedServer starts an httptest server configured by NewServer, with
// its timeouts shortened for tests. It counts the connections the server
// closed.
func hardenedServer(h http.Handler, closed *atomic.Int64) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config = NewServer(h, nil)
	srv.Config.ReadHeaderTimeout = 300 * time.Millisecond
	srv.Config.IdleTimeout = 500 * time.Millisecond
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed && closed != nil {
			closed.Add(1)
		}
	}
	srv.Start()
	return srv
}

func TestNewServer(t *testing.T) {
	s := NewServer(http.NotFoundHandler(), nil)
	if s.ReadHeaderTimeout != 10*time.Second || s.IdleTimeout != 60*time.Second ||
		s.MaxHeaderBytes != 16<<10 || s.WriteTimeout != 0 || s.ReadTimeout != 0 || s.ErrorLog == nil {
		t.Errorf("NewServer: %+v", s)
	}
}

func TestDisconnectReleasesReader(t *testing.T) {
	tests := []struct {
		name     string
		blockAt  int64 // reads past this block until the request ends
		readBody int   // bytes of body the client reads before leaving
	}{
		{"blocked before the first byte", 0, 0},
		{"blocked mid-body", 256 << 10, 100 << 10},
		{"reading mid-body", -1, 100 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			src := &testSource{id: testID, files: []*testFile{
				{File: File{Index: 0, Path: "big.mkv", Length: 1 << 30}, blockAt: tt.blockAt},
			}}
			srv := httptest.NewServer(NewHandler(src.source(), Options{}))
			tr := &http.Transport{}
			client := &http.Client{Transport: tr}

			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/files/0", nil)
				resp, err := client.Do(req)
				if err != nil {
					done <- err
					return
				}
				defer resp.Body.Close()
				if _, err := io.ReadFull(resp.Body, make([]byte, tt.readBody)); err != nil {
					done <- err
					return
				}
				done <- nil
			}()
			if tt.readBody == 0 {
				eventually(t, 5*time.Second, func() bool { return src.opens.Load() == 1 }, func() string { return "no reader opened" })
				time.Sleep(50 * time.Millisecond)
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Errorf("client: %v, want context.Canceled", err)
				}
			} else {
				if err := <-done; err != nil { // closes the body before its end
					t.Fatalf("client: %v", err)
				}
				cancel()
			}
			src.waitReleased(t)
			if n := src.opens.Load(); n != 1 {
				t.Errorf("%d readers opened, want 1", n)
			}
			tr.CloseIdleConnections()
			srv.Close()
			checkGoroutines(t, base)
		})
	}
}

func TestMaxReaders(t *testing.T) {
	const max = 3
	src := &testSource{id: testID, files: []*testFile{
		{File: File{Index: 0, Path: "blocked.mkv", Length: 1 << 20}, blockAt: 0},
		memFile(1, "small.bin", randomBytes(1, 100)),
	}}
	srv := httptest.NewServer(NewHandler(src.source(), Options{MaxReaders: max}))
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range max {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/files/0", nil)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	eventually(t, 5*time.Second, func() bool { return src.opens.Load() == max }, func() string { return "readers not opened" })

	for _, target := range []string{"/files/0", "/files/1", "/files/1/small.bin"} {
		for _, method := range []string{"GET", "HEAD"} {
			req, _ := http.NewRequest(method, srv.URL+target, nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
				t.Errorf("%s %s beyond MaxReaders: status %d, Retry-After %q; want 503, 1",
					method, target, resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		}
	}
	if n := src.opens.Load(); n != max {
		t.Errorf("%d readers opened, want %d", n, max)
	}
	// The listing and 404s do not count.
	for target, want := range map[string]int{"/": 200, "/files/9": 404} {
		resp, err := client.Get(srv.URL + target)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s while full: status %d, want %d", target, resp.StatusCode, want)
		}
	}

	cancel()
	wg.Wait()
	src.waitReleased(t)
	// The slots are free again.
	resp, err := client.Get(srv.URL + "/files/1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) != 100 {
		t.Errorf("after release: status %d, %d bytes", resp.StatusCode, len(body))
	}
	src.waitReleased(t)
}

func TestStalledClient(t *testing.T) {
	base := runtime.NumGoroutine()
	src := &testSource{id: testID, files: []*testFile{
		{File: File{Index: 0, Path: "big.mkv", Length: 1 << 40}, blockAt: -1},
	}}
	h := NewHandler(src.source(), Options{StallTimeout: 200 * time.Millisecond})
	var closed atomic.Int64
	srv := hardenedServer(h, &closed)

	// Requests and never reads: the server's writes fill the socket
	// buffers and stop.
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /files/0 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, 15*time.Second, func() bool { return src.closes.Load() == 1 }, func() string {
		return "the stalled response was not ended"
	})
	t.Logf("stalled response ended after %v", time.Since(start))
	src.waitReleased(t)

	// The server closed the connection.
	eventually(t, 5*time.Second, func() bool { return closed.Load() == 1 }, func() string {
		return "the stalled connection is still open"
	})

	// A keep-alive connection whose previous response ended long ago
	// is not hit by that response's deadline. (Raw, as http.Transport
	// would silently retry on a new connection.)
	kc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	kc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(kc)
	for i, req := range []string{
		"GET /files/0 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /files/9 HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		if i > 0 {
			time.Sleep(400 * time.Millisecond) // twice StallTimeout, less than IdleTimeout
		}
		if _, err := io.WriteString(kc, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: strings.Fields(req)[0]})
		if err != nil {
			t.Fatalf("request %d on a kept-alive connection: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	kc.Close()
	srv.Close()
	checkGoroutines(t, base)
}

func TestIdleAndPartialConnections(t *testing.T) {
	base := runtime.NumGoroutine()
	src := newTestSource()
	var closed atomic.Int64
	srv := hardenedServer(NewHandler(src.source(), Options{StallTimeout: time.Second}), &closed)
	addr := srv.Listener.Addr().String()

	const n = 200
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		switch i % 4 {
		case 1:
			io.WriteString(c, "GET /files/0 HT")
		case 2:
			io.WriteString(c, "GET /files/0 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-")
		case 3:
			io.WriteString(c, "G")
		}
	}

	// The server still answers.
	tr := &http.Transport{}
	client := &http.Client{Transport: tr}
	resp, err := client.Get(srv.URL + "/files/1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) != len(src.files[1].data) {
		t.Errorf("GET with %d idle connections: status %d, %d bytes", n, resp.StatusCode, len(body))
	}
	tr.CloseIdleConnections()

	// The server drops them all after ReadHeaderTimeout.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(time.Now().Add(15 * time.Second))
			_, err := io.Copy(io.Discard, c)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Errorf("a connection was not closed by the server: %v", err)
	}
	eventually(t, 5*time.Second, func() bool { return closed.Load() >= n }, func() string {
		return fmt.Sprintf("the server closed %d of %d connections", closed.Load(), n)
	})
	src.waitReleased(t)
	if n := src.opens.Load(); n != 1 {
		t.Errorf("%d readers opened, want 1", n)
	}
	srv.Close()
	checkGoroutines(t, base)
}

func TestHeaderLimit(t *testing.T) {
	srv := hardenedServer(NewHandler(newTestSource().source(), Options{}), nil)
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB header: status %d, want 431", resp.StatusCode)
	}
}
