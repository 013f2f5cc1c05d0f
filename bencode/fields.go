package bencode

import (
	"reflect"
	"sort"
	"strings"
	"sync"
)

// field describes one struct field that takes part in encoding and decoding.
type field struct {
	name      string // dictionary key
	index     int    // field index in the struct
	omitEmpty bool
}

// structInfo is the cached description of a struct type's fields.
type structInfo struct {
	fields []field        // sorted by name, as they are encoded
	byName map[string]int // name -> index into fields
}

var structCache sync.Map // reflect.Type -> *structInfo

// fieldsOf returns the bencode fields of struct type t. A field's key is
// the name given in its `bencode:"name,omitempty"` tag, or the Go field name
// when the tag gives none; a tag of "-" skips the field, as do unexported
// fields.
func fieldsOf(t reflect.Type) *structInfo {
	if si, ok := structCache.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{byName: make(map[string]int)}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("bencode")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = sf.Name
		}
		f := field{name: name, index: i}
		for opt := range strings.SplitSeq(opts, ",") {
			if opt == "omitempty" {
				f.omitEmpty = true
			}
		}
		si.fields = append(si.fields, f)
		si.byName[name]++
	}
	// Two fields claiming one key are both left out, as encoding/json does.
	kept := si.fields[:0]
	for _, f := range si.fields {
		if si.byName[f.name] == 1 {
			kept = append(kept, f)
		}
	}
	si.fields = kept
	clear(si.byName)
	sort.Slice(si.fields, func(a, b int) bool { return si.fields[a].name < si.fields[b].name })
	for i, f := range si.fields {
		si.byName[f.name] = i
	}
	actual, _ := structCache.LoadOrStore(t, si)
	return actual.(*structInfo)
}
