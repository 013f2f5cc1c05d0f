package bencode

import (
	"errors"
	"reflect"
	"testing"
)

// errKind names the error type a test expects.
type errKind int

const (
	noErr     errKind = iota
	syntaxErr         // *SyntaxError
	limitErr          // *LimitError
	typeErr           // *UnmarshalTypeError
	anyErr            // any non-nil error
)

func (k errKind) String() string {
	return [...]string{"no error", "*SyntaxError", "*LimitError", "*UnmarshalTypeError", "an error"}[k]
}

// checkErr asserts that err is of the given kind and, for the typed kinds,
// reports offset off. It returns false if the check failed.
func checkErr(t *testing.T, err error, kind errKind, off int64) bool {
	t.Helper()
	switch kind {
	case noErr:
		if err != nil {
			t.Errorf("unexpected error: %v", err)
			return false
		}
		return true
	case anyErr:
		if err == nil {
			t.Errorf("got no error, want one")
			return false
		}
		return true
	}
	if err == nil {
		t.Errorf("got no error, want %v at offset %d", kind, off)
		return false
	}
	var got int64
	switch kind {
	case syntaxErr:
		var e *SyntaxError
		if !errors.As(err, &e) {
			t.Errorf("error %q is %T, want %v", err, err, kind)
			return false
		}
		got = e.Offset
	case limitErr:
		var e *LimitError
		if !errors.As(err, &e) {
			t.Errorf("error %q is %T, want %v", err, err, kind)
			return false
		}
		got = e.Offset
	case typeErr:
		var e *UnmarshalTypeError
		if !errors.As(err, &e) {
			t.Errorf("error %q is %T, want %v", err, err, kind)
			return false
		}
		got = e.Offset
	}
	if got != off {
		t.Errorf("error %q: offset %d, want %d", err, got, off)
		return false
	}
	return true
}

// deepEqual is reflect.DeepEqual with a readable failure message.
func checkDeepEqual(t *testing.T, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
}
