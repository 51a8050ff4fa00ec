package jsonw

import (
	"encoding/json"
	"testing"
)

var seeds = []string{"", "mmap", "a\"b\\c", "<x>&", "\x00\x1f\t\n\r\b\f\x7f", "\u2028\u2029", "\xed\xa0\x80", "é\xff", "日本\xc3"}

// TestAppendString checks AppendString on the seeds against encoding/json.
func TestAppendString(t *testing.T) {
	for _, s := range seeds {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Errorf("AppendString(%q) = %s, encoding/json gives %s", s, got, want)
		}
	}
}

// FuzzAppendString compares AppendString with encoding/json on any input.
func FuzzAppendString(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("AppendString(%q) = %s, encoding/json gives %s", s, got[1:], want)
		}
	})
}
