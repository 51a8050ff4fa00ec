// Package bpftest runs classic BPF seccomp programs in
// golang.org/x/net/bpf's interpreter, for tests.
package bpftest

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// SeccompData encodes struct seccomp_data for x/net/bpf's VM, which loads
// words big-endian: each 32-bit word the kernel would load from the
// little-endian struct is stored big-endian at the same offset.
func SeccompData(arch, nr uint32, args [6]uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[20+8*i:], uint32(a>>32))
	}
	return b
}

// VM is a loaded program.
type VM struct{ vm *bpf.VM }

// New loads f.
func New(f []unix.SockFilter) (*VM, error) {
	raw := make([]bpf.RawInstruction, len(f))
	for i, in := range f {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		return nil, fmt.Errorf("x/net/bpf cannot decode the program")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		return nil, err
	}
	return &VM{vm}, nil
}

// Run returns the program's verdict for data.
func (v *VM) Run(data []byte) (uint32, error) {
	r, err := v.vm.Run(data)
	return uint32(r), err
}

// Stack returns the verdict of several filters, given in the order they
// were installed, as the kernel combines them: it runs the newest first and
// keeps the action of highest precedence, the lowest value of the action
// bits read as a signed number (KILL_PROCESS first, ALLOW last); on a tie
// the newer filter's verdict (its errno, say) stays.
func Stack(verdicts ...uint32) uint32 {
	best := verdicts[len(verdicts)-1]
	for i := len(verdicts) - 2; i >= 0; i-- {
		if v := verdicts[i]; int32(v&0xffff0000) < int32(best&0xffff0000) {
			best = v
		}
	}
	return best
}
