package bpfprog

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompData encodes struct seccomp_data for golang.org/x/net/bpf's VM,
// which loads words big-endian: each 32-bit word the kernel would load from
// the little-endian struct is stored big-endian at the same offset.
func seccompData(arch, nr uint32, args [6]uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[20+8*i:], uint32(a>>32))
	}
	return b
}

// classicVM wraps golang.org/x/net/bpf's interpreter around a lowered program.
type classicVM struct{ vm *bpf.VM }

func newClassicVM(f []unix.SockFilter) (*classicVM, error) {
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
	return &classicVM{vm}, nil
}

func (c *classicVM) run(data []byte) (uint32, error) {
	v, err := c.vm.Run(data)
	return uint32(v), err
}

// runEBPF interprets the restricted eBPF form with eBPF's own semantics
// (64-bit R0, sign-extended immediates in 64-bit jumps): the reference the
// lowering is checked against.
func runEBPF(insns asm.Instructions, data []byte) (uint32, error) {
	sym := map[string]int{}
	for i, ins := range insns {
		if s := ins.Symbol(); s != "" {
			sym[s] = i
		}
	}
	var r0 uint64
	for pc, steps := 0, 0; pc < len(insns); steps++ {
		if steps > 1<<16 {
			return 0, fmt.Errorf("no return")
		}
		ins := insns[pc]
		op := ins.OpCode
		pc++
		switch {
		case op.Class() == asm.LdClass && op.Mode() == asm.AbsMode:
			off := int(ins.Constant)
			if off < 0 || off+4 > len(data) {
				return 0, fmt.Errorf("load out of bounds")
			}
			r0 = uint64(binary.BigEndian.Uint32(data[off:]))
		case op.Class().IsALU() && op.ALUOp() == asm.And:
			if op.Class() == asm.ALUClass {
				r0 = uint64(uint32(r0) & uint32(ins.Constant))
			} else {
				r0 &= uint64(ins.Constant)
			}
		case op.Class().IsALU() && op.ALUOp() == asm.Mov:
			if op.Class() == asm.ALUClass {
				r0 = uint64(uint32(ins.Constant))
			} else {
				r0 = uint64(ins.Constant)
			}
		case op.Class().IsJump() && op.JumpOp() == asm.Exit:
			return uint32(r0), nil
		case op.Class().IsJump():
			a, k := r0, uint64(ins.Constant)
			if op.Class() == asm.Jump32Class {
				a, k = uint64(uint32(a)), uint64(uint32(k))
			}
			var taken bool
			switch op.JumpOp() {
			case asm.Ja:
				taken = true
			case asm.JEq:
				taken = a == k
			case asm.JNE:
				taken = a != k
			case asm.JGT:
				taken = a > k
			case asm.JGE:
				taken = a >= k
			case asm.JLT:
				taken = a < k
			case asm.JLE:
				taken = a <= k
			case asm.JSet:
				taken = a&k != 0
			default:
				return 0, fmt.Errorf("unsupported jump %v", ins)
			}
			if taken {
				t, ok := sym[ins.Reference()]
				if !ok {
					return 0, fmt.Errorf("undefined symbol %q", ins.Reference())
				}
				pc = t
			}
		default:
			return 0, fmt.Errorf("unsupported instruction %v", ins)
		}
	}
	return 0, fmt.Errorf("fell off the end")
}
