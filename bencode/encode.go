package bencode

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
)

// Marshaler is implemented by types that encode themselves. The bytes
// returned must be exactly one well-formed bencode value.
type Marshaler interface {
	MarshalBencode() ([]byte, error)
}

var marshalerType = reflect.TypeFor[Marshaler]()

// Marshal returns the bencode encoding of v.
//
// Integers, and bool as 0 or 1, encode as integers; strings, []byte and
// byte arrays as strings; other slices and arrays as lists; maps with string
// keys and structs as dictionaries with their keys sorted. Struct fields
// take their key from a `bencode:"key"` tag, or the field name; the option
// `omitempty` leaves a field out when it holds its zero value (or an empty
// slice or map), and a nil pointer, interface or slice field is always left
// out, as bencode has no null. Floats, channels and functions are errors.
func Marshal(v any) ([]byte, error) {
	var e encoder
	if err := e.value(reflect.ValueOf(v)); err != nil {
		return nil, err
	}
	return e.buf, nil
}

// MarshalBencode returns m itself after checking it is exactly one value.
func (m RawMessage) MarshalBencode() ([]byte, error) {
	if err := (&Decoder{}).Valid(m); err != nil {
		return nil, err
	}
	return m, nil
}

// maxEncodeDepth bounds the nesting Marshal follows, so a cyclic value
// (a pointer back to itself) is an error rather than a stack overflow.
const maxEncodeDepth = 10000

type encoder struct {
	buf   []byte
	depth int
}

func (e *encoder) str(b []byte) {
	e.buf = strconv.AppendInt(e.buf, int64(len(b)), 10)
	e.buf = append(e.buf, ':')
	e.buf = append(e.buf, b...)
}

func (e *encoder) value(v reflect.Value) error {
	e.depth++
	defer func() { e.depth-- }()
	if e.depth > maxEncodeDepth {
		return &MarshalError{Type: v.Type(), Msg: fmt.Sprintf("nested more than %d deep (a cycle?)", maxEncodeDepth)}
	}
	if !v.IsValid() {
		return &MarshalError{Type: nil, Msg: "nil has no bencode form"}
	}
	if v.Type().Implements(marshalerType) {
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return &MarshalError{Type: v.Type(), Msg: "nil pointer"}
		}
		b, err := v.Interface().(Marshaler).MarshalBencode()
		if err != nil {
			return fmt.Errorf("bencode: %v.MarshalBencode: %w", v.Type(), err)
		}
		e.buf = append(e.buf, b...)
		return nil
	}
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			e.buf = append(e.buf, "i1e"...)
		} else {
			e.buf = append(e.buf, "i0e"...)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.buf = append(e.buf, 'i')
		e.buf = strconv.AppendInt(e.buf, v.Int(), 10)
		e.buf = append(e.buf, 'e')
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if v.Uint() > math.MaxInt64 {
			return &MarshalError{Type: v.Type(), Msg: fmt.Sprintf("%d does not fit in a bencode integer (int64)", v.Uint())}
		}
		e.buf = append(e.buf, 'i')
		e.buf = strconv.AppendUint(e.buf, v.Uint(), 10)
		e.buf = append(e.buf, 'e')
	case reflect.String:
		e.buf = strconv.AppendInt(e.buf, int64(v.Len()), 10)
		e.buf = append(e.buf, ':')
		e.buf = append(e.buf, v.String()...)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			e.str(v.Bytes())
			return nil
		}
		return e.list(v)
	case reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, v.Len())
			for i := range b { // element type may be a named byte type
				b[i] = byte(v.Index(i).Uint())
			}
			e.str(b)
			return nil
		}
		return e.list(v)
	case reflect.Map:
		return e.dictMap(v)
	case reflect.Struct:
		return e.dictStruct(v)
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return &MarshalError{Type: v.Type(), Msg: "nil has no bencode form"}
		}
		return e.value(v.Elem())
	default:
		return &MarshalError{Type: v.Type(), Msg: "unsupported kind " + v.Kind().String()}
	}
	return nil
}

func (e *encoder) list(v reflect.Value) error {
	e.buf = append(e.buf, 'l')
	for i := range v.Len() {
		if err := e.value(v.Index(i)); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, 'e')
	return nil
}

func (e *encoder) dictMap(v reflect.Value) error {
	if v.Type().Key().Kind() != reflect.String {
		return &MarshalError{Type: v.Type(), Msg: "dictionary keys must be strings"}
	}
	keys := v.MapKeys()
	slices.SortFunc(keys, func(a, b reflect.Value) int {
		return bytes.Compare([]byte(a.String()), []byte(b.String()))
	})
	e.buf = append(e.buf, 'd')
	for _, k := range keys {
		elem := v.MapIndex(k)
		if isNil(elem) {
			continue
		}
		e.str([]byte(k.String()))
		if err := e.value(elem); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, 'e')
	return nil
}

func (e *encoder) dictStruct(v reflect.Value) error {
	si := fieldsOf(v.Type())
	e.buf = append(e.buf, 'd')
	for _, f := range si.fields {
		fv := v.Field(f.index)
		if isNil(fv) || (f.omitEmpty && isEmpty(fv)) {
			continue
		}
		e.str([]byte(f.name))
		if err := e.value(fv); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, 'e')
	return nil
}

// isNil reports a value with no bencode form that dictionaries leave out.
func isNil(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice:
		return v.IsNil()
	}
	return false
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map, reflect.String, reflect.Array:
		return v.Len() == 0
	}
	return v.IsZero()
}
