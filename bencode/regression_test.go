package bencode

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

// noPanic runs f and turns a panic into a test failure, so that one bug
// does not take down the rest of the test binary.
func noPanic(t *testing.T, what string, f func()) (ok bool) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s panicked: %v", what, r)
			ok = false
		}
	}()
	f()
	return true
}

// A string length of 19 digits above MaxInt64 overflowed int64 to a
// negative length, which passed the bounds checks and made the decoder
// slice data[pos:pos+n] with a negative bound: a panic on untrusted input.
func TestRegressionStringLengthOverflow(t *testing.T) {
	tests := []struct {
		in  string
		off int64
	}{
		{"9223372036854775808:", 0}, // MaxInt64+1
		{"9999999999999999999:", 0},
		{"9223372036854775808:abc", 0},
		{"l9999999999999999999:e", 1},
		{"d9999999999999999999:i1ee", 1},
		{"d1:a9999999999999999999:e", 4},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			for _, strict := range []bool{false, true} {
				d := &Decoder{Strict: strict}
				_ = noPanic(t, fmt.Sprintf("Unmarshal into any (strict=%v)", strict), func() {
					var v any
					checkErr(t, d.Unmarshal([]byte(tt.in), &v), syntaxErr, tt.off)
				}) && noPanic(t, fmt.Sprintf("Valid (strict=%v)", strict), func() {
					checkErr(t, d.Valid([]byte(tt.in)), syntaxErr, tt.off)
				}) && noPanic(t, fmt.Sprintf("Unmarshal into struct (strict=%v)", strict), func() {
					var f testFile
					if err := d.Unmarshal([]byte(tt.in), &f); err == nil {
						t.Errorf("no error")
					}
				})
			}
		})
	}
}

type namedByte byte

// Byte arrays whose element type is a named byte type are accepted as
// strings by the kind checks, but reflect.Copy requires identical element
// types and panicked.
func TestRegressionNamedByteArray(t *testing.T) {
	noPanic(t, "Unmarshal into [3]namedByte", func() {
		var a [3]namedByte
		if err := Unmarshal([]byte("3:abc"), &a); err != nil {
			t.Errorf("Unmarshal: %v", err)
		}
		if a != [3]namedByte{'a', 'b', 'c'} {
			t.Errorf("got %v", a)
		}
	})
	noPanic(t, "Marshal [3]namedByte", func() {
		b, err := Marshal([3]namedByte{'a', 'b', 'c'})
		if err != nil || string(b) != "3:abc" {
			t.Errorf("Marshal = %q, %v; want \"3:abc\"", b, err)
		}
	})
	// Slices of a named byte type already work.
	noPanic(t, "[]namedByte", func() {
		var s []namedByte
		if err := Unmarshal([]byte("2:ab"), &s); err != nil || string(rune(s[0])) != "a" {
			t.Errorf("Unmarshal: %v, %v", s, err)
		}
		b, err := Marshal(s)
		if err != nil || string(b) != "2:ab" {
			t.Errorf("Marshal = %q, %v", b, err)
		}
	})
}

// Marshal must not write integers its own decoder rejects, nor recurse
// forever on a cyclic value.
func TestMarshalBounds(t *testing.T) {
	var me *MarshalError
	if _, err := Marshal(uint64(math.MaxUint64)); !errors.As(err, &me) {
		t.Errorf("Marshal(MaxUint64): %v, want *MarshalError", err)
	}
	if b, err := Marshal(uint64(math.MaxInt64)); err != nil || string(b) != "i9223372036854775807e" {
		t.Errorf("Marshal(MaxInt64 as uint64) = %q, %v", b, err)
	}
	type node struct{ Next *node }
	n := &node{}
	n.Next = n
	if _, err := Marshal(n); !errors.As(err, &me) {
		t.Errorf("Marshal(cycle): %v, want *MarshalError", err)
	}
}
