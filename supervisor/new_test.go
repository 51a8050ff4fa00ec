package supervisor

import (
	"testing"

	"github.com/sandlock/sandlock/bpfprog"
)

// BenchmarkNew measures preparing a supervisor, which every launch pays.
func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s, err := New(Config{Arch: bpfprog.X86_64, MaxProcesses: 64, Hostname: "x"})
		if err != nil {
			b.Fatal(err)
		}
		s.Stop()
	}
}
