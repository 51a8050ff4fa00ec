package asmgen

import (
	"testing"

	"github.com/sandlock/sandlock/bpfprog"
)

// BenchmarkBuild measures generating and lowering the supervised default
// filter, which every launch pays.
func BenchmarkBuild(b *testing.B) {
	o := bpfprog.Options{Notify: bpfprog.NotifyProcesses | bpfprog.NotifySignals | bpfprog.NotifyHostname}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		p, err := bpfprog.DefaultPolicy(bpfprog.X86_64, o)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Build(p); err != nil {
			b.Fatal(err)
		}
	}
}
