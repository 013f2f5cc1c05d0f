package httpserve

import (
	"net/http"
	"time"
)

// deadlineWriter renews the connection's write deadline before each
// write, so a write that makes no progress for timeout fails and the
// handler, and its reader, end. It is used by one goroutine, the
// handler's.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController // of the wrapped writer
	timeout time.Duration
	err     error // the first write error
}

// extend sets the write deadline to timeout from now. Writers that have
// no deadlines (httptest.ResponseRecorder) are served without one.
func (w *deadlineWriter) extend() {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
}

// WriteHeader renews the deadline: the header may be flushed on its own
// when the handler returns.
func (w *deadlineWriter) WriteHeader(code int) {
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

// Write renews the deadline, then writes p.
func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.extend()
	n, err := w.ResponseWriter.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
