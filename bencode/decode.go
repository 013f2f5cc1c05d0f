package bencode

import (
	"fmt"
	"io"
	"math"
	"reflect"
)

// Default bounds used by a zero [Decoder] and by [Unmarshal].
const (
	DefaultMaxDepth = 64
	DefaultMaxSize  = 64 << 20 // 64 MiB
)

// Unmarshaler is implemented by types that decode themselves from the raw
// bytes of one bencode value. The bytes have already been checked to be a
// single well-formed value.
type Unmarshaler interface {
	UnmarshalBencode([]byte) error
}

// RawMessage holds the exact bytes of one encoded value. Decoding into a
// RawMessage copies the value's bytes from the input unchanged; encoding a
// RawMessage writes them back as they are. It is how the info hash of a
// torrent is computed over exactly the bytes in the file.
type RawMessage []byte

// Decoder decodes bencode with configurable bounds. The zero value is ready
// to use, with the Default limits and lenient key order.
type Decoder struct {
	// MaxDepth bounds the nesting of lists and dictionaries (0: DefaultMaxDepth).
	MaxDepth int
	// MaxSize bounds the whole input in bytes (0: DefaultMaxSize).
	MaxSize int64
	// MaxStringLen bounds any one string (0: MaxSize).
	MaxStringLen int64
	// Strict rejects dictionaries whose keys are not in sorted order.
	// Duplicate keys are always rejected.
	Strict bool
}

// Unmarshal decodes data, which must hold exactly one bencode value, into v
// (a non-nil pointer) using the default bounds. See [Decoder.Unmarshal].
func Unmarshal(data []byte, v any) error {
	var d Decoder
	return d.Unmarshal(data, v)
}

// Unmarshal decodes data, which must hold exactly one bencode value, into v,
// which must be a non-nil pointer.
//
// Integers decode into any Go integer kind that holds them, and into bool
// (0 or 1). Strings decode into string, []byte and byte arrays of exactly
// the string's length. Lists decode into slices and arrays of matching
// length. Dictionaries decode into structs (keys matched to `bencode` tags
// or field names, unknown keys skipped) and maps with string keys. Into an
// empty interface the result is int64, string, []any or map[string]any.
func (d *Decoder) Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("bencode: Unmarshal needs a non-nil pointer, got %T", v)
	}
	ds := d.state(data)
	if int64(len(data)) > ds.maxSize {
		return &LimitError{Offset: 0, Limit: "size", Max: ds.maxSize}
	}
	if len(data) == 0 {
		return &SyntaxError{Offset: 0, Msg: "empty input"}
	}
	if err := ds.value(rv.Elem()); err != nil {
		return err
	}
	if ds.pos != len(data) {
		return &SyntaxError{Offset: int64(ds.pos), Msg: "trailing data after value"}
	}
	return nil
}

// Decode reads all of r, up to the Decoder's MaxSize, and decodes it into
// v as [Decoder.Unmarshal] does. Input larger than MaxSize is an error; no
// more than MaxSize+1 bytes are read.
func (d *Decoder) Decode(r io.Reader, v any) error {
	max := d.maxSize()
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return fmt.Errorf("bencode: read: %w", err)
	}
	if int64(len(data)) > max {
		return &LimitError{Offset: max, Limit: "size", Max: max}
	}
	return d.Unmarshal(data, v)
}

// Valid reports whether data is exactly one well-formed bencode value
// within the Decoder's bounds, and if not, why.
func (d *Decoder) Valid(data []byte) error {
	var raw RawMessage
	return d.Unmarshal(data, &raw)
}

func (d *Decoder) maxSize() int64 {
	if d.MaxSize > 0 {
		return d.MaxSize
	}
	return DefaultMaxSize
}

func (d *Decoder) state(data []byte) *decodeState {
	ds := &decodeState{data: data, strict: d.Strict, maxDepth: d.MaxDepth, maxSize: d.maxSize(), maxString: d.MaxStringLen}
	if ds.maxDepth <= 0 {
		ds.maxDepth = DefaultMaxDepth
	}
	if ds.maxString <= 0 {
		ds.maxString = ds.maxSize
	}
	return ds
}

type decodeState struct {
	data      []byte
	pos       int
	depth     int
	strict    bool
	maxDepth  int
	maxSize   int64
	maxString int64
	field     string // key of the dictionary entry being decoded, for errors
}

var (
	unmarshalerType = reflect.TypeFor[Unmarshaler]()
	rawMessageType  = reflect.TypeFor[RawMessage]()
)

func (ds *decodeState) syntax(off int, format string, args ...any) error {
	return &SyntaxError{Offset: int64(off), Msg: fmt.Sprintf(format, args...)}
}

func (ds *decodeState) typeError(off int, kind string, t reflect.Type) error {
	return &UnmarshalTypeError{Offset: int64(off), Value: kind, Type: t, Field: ds.field}
}

// peek returns the byte at the cursor, or an error at end of input.
func (ds *decodeState) peek() (byte, error) {
	if ds.pos >= len(ds.data) {
		return 0, ds.syntax(ds.pos, "unexpected end of input")
	}
	return ds.data[ds.pos], nil
}

// value decodes the value at the cursor into v.
func (ds *decodeState) value(v reflect.Value) error {
	start := ds.pos
	c, err := ds.peek()
	if err != nil {
		return err
	}

	// Types that take raw bytes: RawMessage and Unmarshalers.
	if v.Type() == rawMessageType {
		if err := ds.skip(); err != nil {
			return err
		}
		v.SetBytes(append([]byte(nil), ds.data[start:ds.pos]...))
		return nil
	}
	if v.Kind() != reflect.Pointer && v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if err := ds.skip(); err != nil {
			return err
		}
		if err := v.Addr().Interface().(Unmarshaler).UnmarshalBencode(ds.data[start:ds.pos]); err != nil {
			return fmt.Errorf("bencode: field %q at offset %d: %w", ds.field, start, err)
		}
		return nil
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return ds.value(v.Elem())
	}
	if v.Kind() == reflect.Interface && v.NumMethod() == 0 {
		x, err := ds.generic()
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(x))
		return nil
	}

	switch {
	case c == 'i':
		n, err := ds.integer()
		if err != nil {
			return err
		}
		return ds.setInt(start, v, n)
	case c >= '0' && c <= '9':
		s, err := ds.bytes()
		if err != nil {
			return err
		}
		return ds.setString(start, v, s)
	case c == 'l':
		return ds.list(v)
	case c == 'd':
		return ds.dict(v)
	default:
		return ds.syntax(start, "invalid byte %q where a value should start", c)
	}
}

func (ds *decodeState) setInt(off int, v reflect.Value, n int64) error {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.OverflowInt(n) {
			return ds.typeError(off, fmt.Sprintf("integer %d", n), v.Type())
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if n < 0 || v.OverflowUint(uint64(n)) {
			return ds.typeError(off, fmt.Sprintf("integer %d", n), v.Type())
		}
		v.SetUint(uint64(n))
	case reflect.Bool:
		if n != 0 && n != 1 {
			return ds.typeError(off, fmt.Sprintf("integer %d", n), v.Type())
		}
		v.SetBool(n == 1)
	default:
		return ds.typeError(off, "integer", v.Type())
	}
	return nil
}

func (ds *decodeState) setString(off int, v reflect.Value, s []byte) error {
	switch v.Kind() {
	case reflect.String:
		v.SetString(string(s))
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Uint8 {
			return ds.typeError(off, "string", v.Type())
		}
		v.SetBytes(append(make([]byte, 0, len(s)), s...))
	case reflect.Array:
		if v.Type().Elem().Kind() != reflect.Uint8 || v.Len() != len(s) {
			return ds.typeError(off, fmt.Sprintf("string of length %d", len(s)), v.Type())
		}
		for i, b := range s { // element type may be a named byte type
			v.Index(i).SetUint(uint64(b))
		}
	default:
		return ds.typeError(off, "string", v.Type())
	}
	return nil
}

func (ds *decodeState) enter() error {
	ds.depth++
	if ds.depth > ds.maxDepth {
		return &LimitError{Offset: int64(ds.pos), Limit: "depth", Max: int64(ds.maxDepth)}
	}
	return nil
}

func (ds *decodeState) list(v reflect.Value) error {
	start := ds.pos
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
	default:
		return ds.typeError(start, "list", v.Type())
	}
	if err := ds.enter(); err != nil {
		return err
	}
	ds.pos++ // 'l'
	i := 0
	if v.Kind() == reflect.Slice {
		v.SetLen(0)
	}
	for {
		c, err := ds.peek()
		if err != nil {
			return err
		}
		if c == 'e' {
			ds.pos++
			break
		}
		if v.Kind() == reflect.Slice {
			v.Grow(1)
			v.SetLen(i + 1)
		} else if i >= v.Len() {
			return ds.typeError(start, "list longer than array", v.Type())
		}
		elem := v.Index(i)
		elem.SetZero()
		if err := ds.value(elem); err != nil {
			return err
		}
		i++
	}
	if v.Kind() == reflect.Array && i != v.Len() {
		return ds.typeError(start, fmt.Sprintf("list of %d elements", i), v.Type())
	}
	if v.Kind() == reflect.Slice && v.IsNil() {
		v.Set(reflect.MakeSlice(v.Type(), 0, 0))
	}
	ds.depth--
	return nil
}

// dictKeys checks the order and uniqueness of a dictionary's keys as they
// are read. Sorted keys are checked against the previous one alone; once a
// key arrives out of order (allowed unless strict), every key is checked
// against the set of all keys seen.
type dictKeys struct {
	strict bool
	prev   []byte
	n      int
	sorted [][]byte            // keys while they arrive in order (lenient mode only)
	seen   map[string]struct{} // every key, once one arrived out of order
}

func (k *dictKeys) check(ds *decodeState, off int, key []byte) error {
	defer func() { k.prev = key; k.n++ }()
	if k.n == 0 {
		if !k.strict {
			k.sorted = append(k.sorted, key)
		}
		return nil
	}
	if k.seen == nil {
		c := compareBytes(key, k.prev)
		if c == 0 {
			return ds.syntax(off, "duplicate dictionary key %q", key)
		}
		if c > 0 {
			if !k.strict {
				k.sorted = append(k.sorted, key)
			}
			return nil
		}
		if k.strict {
			return ds.syntax(off, "dictionary key %q is out of order", key)
		}
		k.seen = make(map[string]struct{}, len(k.sorted)+1)
		for _, s := range k.sorted {
			k.seen[string(s)] = struct{}{}
		}
		k.sorted = nil
	}
	if _, dup := k.seen[string(key)]; dup {
		return ds.syntax(off, "duplicate dictionary key %q", key)
	}
	k.seen[string(key)] = struct{}{}
	return nil
}

func compareBytes(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}

func (ds *decodeState) dict(v reflect.Value) error {
	start := ds.pos
	var si *structInfo
	switch v.Kind() {
	case reflect.Struct:
		si = fieldsOf(v.Type())
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return ds.typeError(start, "dictionary", v.Type())
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
	default:
		return ds.typeError(start, "dictionary", v.Type())
	}
	if err := ds.enter(); err != nil {
		return err
	}
	ds.pos++ // 'd'
	keys := newDictKeys(ds.strict)
	outer := ds.field
	for {
		key, end, err := ds.nextKey(keys)
		if err != nil {
			return err
		}
		if end {
			break
		}
		if outer != "" {
			ds.field = outer + "." + string(key)
		} else {
			ds.field = string(key)
		}
		if si != nil {
			i, ok := si.byName[string(key)]
			if !ok {
				if err := ds.skip(); err != nil {
					return err
				}
				continue
			}
			if err := ds.value(v.Field(si.fields[i].index)); err != nil {
				return err
			}
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		if err := ds.value(elem); err != nil {
			return err
		}
		v.SetMapIndex(reflect.ValueOf(string(key)).Convert(v.Type().Key()), elem)
	}
	ds.field = outer
	ds.depth--
	return nil
}

func newDictKeys(strict bool) *dictKeys {
	return &dictKeys{strict: strict}
}

// nextKey reads the next key of a dictionary whose 'd' has been consumed,
// checking order and uniqueness, and that a value follows. At the closing
// 'e' it consumes it and reports end.
func (ds *decodeState) nextKey(keys *dictKeys) (key []byte, end bool, err error) {
	c, err := ds.peek()
	if err != nil {
		return nil, false, err
	}
	if c == 'e' {
		ds.pos++
		return nil, true, nil
	}
	koff := ds.pos
	if c < '0' || c > '9' {
		return nil, false, ds.syntax(koff, "dictionary key must be a string, found %q", c)
	}
	if key, err = ds.bytes(); err != nil {
		return nil, false, err
	}
	if err := keys.check(ds, koff, key); err != nil {
		return nil, false, err
	}
	if ds.pos >= len(ds.data) {
		return nil, false, ds.syntax(ds.pos, "unexpected end of input: dictionary key %q has no value", key)
	}
	return key, false, nil
}

// integer parses "i<digits>e" at the cursor.
func (ds *decodeState) integer() (int64, error) {
	start := ds.pos
	ds.pos++ // 'i'
	neg := false
	if ds.pos < len(ds.data) && ds.data[ds.pos] == '-' {
		neg = true
		ds.pos++
	}
	digits := ds.pos
	var n uint64
	for ds.pos < len(ds.data) {
		c := ds.data[ds.pos]
		if c == 'e' {
			break
		}
		if c < '0' || c > '9' {
			return 0, ds.syntax(ds.pos, "invalid byte %q in integer", c)
		}
		if n > (math.MaxUint64-9)/10 {
			return 0, ds.syntax(start, "integer overflows 64 bits")
		}
		n = n*10 + uint64(c-'0')
		ds.pos++
	}
	if ds.pos >= len(ds.data) {
		return 0, ds.syntax(ds.pos, "unexpected end of input in integer")
	}
	nd := ds.pos - digits
	ds.pos++ // 'e'
	switch {
	case nd == 0:
		return 0, ds.syntax(start, "integer has no digits")
	case nd > 1 && ds.data[digits] == '0':
		return 0, ds.syntax(start, "integer has a leading zero")
	case neg && n == 0:
		return 0, ds.syntax(start, "negative zero integer")
	}
	if neg {
		if n > 1<<63 {
			return 0, ds.syntax(start, "integer overflows int64")
		}
		return -int64(n), nil
	}
	if n > math.MaxInt64 {
		return 0, ds.syntax(start, "integer overflows int64")
	}
	return int64(n), nil
}

// bytes parses "<length>:<bytes>" at the cursor and returns the bytes as a
// sub-slice of the input.
func (ds *decodeState) bytes() ([]byte, error) {
	start := ds.pos
	var n int64
	for ds.pos < len(ds.data) && ds.data[ds.pos] != ':' {
		c := ds.data[ds.pos]
		if c < '0' || c > '9' {
			return nil, ds.syntax(ds.pos, "invalid byte %q in string length", c)
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return nil, ds.syntax(start, "string length overflows int64")
		}
		n = n*10 + d
		ds.pos++
	}
	if ds.pos >= len(ds.data) {
		return nil, ds.syntax(ds.pos, "unexpected end of input in string length")
	}
	if ds.pos-start > 1 && ds.data[start] == '0' {
		return nil, ds.syntax(start, "string length has a leading zero")
	}
	ds.pos++ // ':'
	if rem := int64(len(ds.data) - ds.pos); n > rem {
		return nil, ds.syntax(start, "string of length %d runs past end of input (%d bytes left)", n, rem)
	}
	if n > ds.maxString {
		return nil, &LimitError{Offset: int64(start), Limit: "string length", Max: ds.maxString}
	}
	s := ds.data[ds.pos : ds.pos+int(n)]
	ds.pos += int(n)
	return s, nil
}

// skip checks and steps over the value at the cursor.
func (ds *decodeState) skip() error {
	start := ds.pos
	c, err := ds.peek()
	if err != nil {
		return err
	}
	switch {
	case c == 'i':
		_, err := ds.integer()
		return err
	case c >= '0' && c <= '9':
		_, err := ds.bytes()
		return err
	case c == 'l':
		if err := ds.enter(); err != nil {
			return err
		}
		ds.pos++
		for {
			c, err := ds.peek()
			if err != nil {
				return err
			}
			if c == 'e' {
				ds.pos++
				ds.depth--
				return nil
			}
			if err := ds.skip(); err != nil {
				return err
			}
		}
	case c == 'd':
		if err := ds.enter(); err != nil {
			return err
		}
		ds.pos++
		keys := newDictKeys(ds.strict)
		for {
			_, end, err := ds.nextKey(keys)
			if err != nil {
				return err
			}
			if end {
				ds.depth--
				return nil
			}
			if err := ds.skip(); err != nil {
				return err
			}
		}
	default:
		return ds.syntax(start, "invalid byte %q where a value should start", c)
	}
}

// generic decodes the value at the cursor into int64, string, []any or
// map[string]any.
func (ds *decodeState) generic() (any, error) {
	start := ds.pos
	c, err := ds.peek()
	if err != nil {
		return nil, err
	}
	switch {
	case c == 'i':
		return ds.integer()
	case c >= '0' && c <= '9':
		s, err := ds.bytes()
		return string(s), err
	case c == 'l':
		l := []any{}
		err := ds.list(reflect.ValueOf(&l).Elem())
		return l, err
	case c == 'd':
		m := map[string]any{}
		err := ds.dict(reflect.ValueOf(&m).Elem())
		return m, err
	default:
		return nil, ds.syntax(start, "invalid byte %q where a value should start", c)
	}
}
