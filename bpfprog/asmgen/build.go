package asmgen

import (
	"github.com/cilium/ebpf/asm"
	"github.com/sandlock/sandlock/bpfprog"
	"golang.org/x/sys/unix"
)

// Program is a generated filter: its symbolic form and its classic BPF.
type Program struct {
	Policy *bpfprog.Policy
	// Insns is the symbolic program (without comments; Generate adds them).
	Insns asm.Instructions
	// Filter is the classic BPF given to seccomp(2).
	Filter []unix.SockFilter
}

// Build generates (without comments) and lowers p.
func Build(p *bpfprog.Policy) (*Program, error) {
	insns, err := generate(p, false)
	if err != nil {
		return nil, err
	}
	f, err := Lower(insns)
	if err != nil {
		return nil, err
	}
	return &Program{Policy: p, Insns: insns, Filter: f}, nil
}
