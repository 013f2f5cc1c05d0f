package bencode

import (
	"fmt"
	"reflect"
)

// SyntaxError reports input that is not valid bencode.
type SyntaxError struct {
	Offset int64  // byte offset in the input where the problem starts
	Msg    string // what is wrong
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("bencode: %s at offset %d", e.Msg, e.Offset)
}

// LimitError reports input that is well formed so far but exceeds one of
// the [Decoder]'s bounds (depth, string length or total size).
type LimitError struct {
	Offset int64  // byte offset of the value that crossed the bound
	Limit  string // which bound: "depth", "string length" or "size"
	Max    int64  // the bound in force
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("bencode: %s exceeds limit of %d at offset %d", e.Limit, e.Max, e.Offset)
}

// UnmarshalTypeError reports a bencode value that cannot be stored in the
// Go value it was decoded into.
type UnmarshalTypeError struct {
	Offset int64        // byte offset of the value
	Value  string       // the bencode kind: "integer", "string", "list" or "dictionary"
	Type   reflect.Type // the Go type it could not be stored in
	Field  string       // the dictionary key path leading to it, if any
}

func (e *UnmarshalTypeError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("bencode: cannot store %s in field %q of type %v at offset %d", e.Value, e.Field, e.Type, e.Offset)
	}
	return fmt.Sprintf("bencode: cannot store %s in Go value of type %v at offset %d", e.Value, e.Type, e.Offset)
}

// MarshalError reports a Go value that has no bencode form.
type MarshalError struct {
	Type reflect.Type
	Msg  string
}

func (e *MarshalError) Error() string {
	return fmt.Sprintf("bencode: cannot encode %v: %s", e.Type, e.Msg)
}
