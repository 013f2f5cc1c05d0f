package bencode_test

import (
	"crypto/sha1"
	"errors"
	"fmt"

	"github.com/aiotorrent/aiotorrent/bencode"
)

func ExampleUnmarshal() {
	type File struct {
		Length int64    `bencode:"length"`
		Path   []string `bencode:"path"`
	}
	var f File
	err := bencode.Unmarshal([]byte("d6:lengthi1024e4:pathl3:dir8:file.txtee"), &f)
	fmt.Println(f.Length, f.Path, err)

	// Into an empty interface: int64, string, []any and map[string]any.
	var v any
	err = bencode.Unmarshal([]byte("d3:cow3:moo4:spaml1:ai2eee"), &v)
	fmt.Printf("%v %v\n", v, err)

	// Errors give the byte offset where the input went wrong.
	err = bencode.Unmarshal([]byte("li1ei03ee"), &v)
	var se *bencode.SyntaxError
	if errors.As(err, &se) {
		fmt.Println(se.Offset, se.Msg)
	}
	// Output:
	// 1024 [dir file.txt] <nil>
	// map[cow:moo spam:[a 2]] <nil>
	// 4 integer has a leading zero
}

func ExampleMarshal() {
	type Info struct {
		Name        string `bencode:"name"`
		PieceLength int64  `bencode:"piece length"`
		Private     bool   `bencode:"private,omitempty"`
	}
	b, err := bencode.Marshal(Info{Name: "example", PieceLength: 16384})
	fmt.Printf("%s %v\n", b, err)

	// Map keys are written sorted.
	b, err = bencode.Marshal(map[string]any{"spam": []string{"a", "b"}, "cow": "moo"})
	fmt.Printf("%s %v\n", b, err)

	_, err = bencode.Marshal(3.14)
	fmt.Println(err)
	// Output:
	// d4:name7:example12:piece lengthi16384ee <nil>
	// d3:cow3:moo4:spaml1:a1:bee <nil>
	// bencode: cannot encode float64: unsupported kind float64
}

func ExampleRawMessage() {
	// The info hash is the SHA-1 of the info dictionary exactly as it
	// appears in the file, whatever its key order.
	data := []byte("d8:announce9:http://t/4:infod4:name1:x6:lengthi1eee")
	var t struct {
		Announce string             `bencode:"announce"`
		Info     bencode.RawMessage `bencode:"info"`
	}
	if err := bencode.Unmarshal(data, &t); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n%x\n", t.Info, sha1.Sum(t.Info))

	// Marshal writes a RawMessage back unchanged.
	b, _ := bencode.Marshal(t)
	fmt.Println(string(b) == string(data))
	// Output:
	// d4:name1:x6:lengthi1ee
	// 128cc821621575f5faaf184cdd70fd420802c670
	// true
}

func ExampleDecoder() {
	d := bencode.Decoder{Strict: true, MaxDepth: 2}
	var v any
	fmt.Println(d.Unmarshal([]byte("d1:bi1e1:ai2ee"), &v))
	fmt.Println(d.Unmarshal([]byte("lllee"), &v))
	fmt.Println(d.Valid([]byte("d1:ai1e1:bi2ee")))
	// Output:
	// bencode: dictionary key "a" is out of order at offset 7
	// bencode: depth exceeds limit of 2 at offset 2
	// <nil>
}
