package asmgen

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf/asm"
	"github.com/sandlock/sandlock/internal/bpftest"
	"golang.org/x/sys/unix"
)

var seccompData = bpftest.SeccompData

func newClassicVM(f []unix.SockFilter) (*classicVM, error) {
	v, err := bpftest.New(f)
	return &classicVM{v}, err
}

type classicVM struct{ *bpftest.VM }

func (c *classicVM) run(data []byte) (uint32, error) { return c.Run(data) }

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
