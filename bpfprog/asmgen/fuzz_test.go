package asmgen

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
)

// progFromBytes decodes fuzz input into a program in the form Lower accepts:
// loads, masks, forward conditional and unconditional jumps to labels, runs
// of filler to force long jumps, and returns.
func progFromBytes(b []byte) asm.Instructions {
	var insns asm.Instructions
	next := func() byte {
		if len(b) == 0 {
			return 0
		}
		c := b[0]
		b = b[1:]
		return c
	}
	nlabels := 0
	pending := []string{}
	var refs []string
	emit := func(ins asm.Instruction) {
		if len(pending) > 0 {
			ins = ins.WithSymbol(pending[0])
			pending = pending[1:]
		}
		insns = append(insns, ins)
	}
	newRef := func() string {
		nlabels++
		l := fmt.Sprintf("L%d", nlabels)
		refs = append(refs, l)
		return l
	}
	jumps := []asm.JumpOp{asm.JEq, asm.JNE, asm.JGT, asm.JGE, asm.JLT, asm.JLE, asm.JSet}
	for len(b) > 0 && len(insns) < 3000 {
		switch op := next() % 8; op {
		case 0:
			emit(asm.LoadAbs(int32(next()%16)*4, asm.Word))
		case 1:
			emit(asm.And.Imm32(asm.R0, int32(uint32(next())<<24|uint32(next()))))
		case 2, 3:
			j := jumps[int(next())%len(jumps)]
			k := int32(next()) - 64
			if next()%2 == 0 || k < 0 {
				emit(j.Imm32(asm.R0, k, newRef()))
			} else {
				emit(j.Imm(asm.R0, k, newRef()))
			}
		case 4:
			emit(asm.Ja.Label(newRef()))
		case 5:
			emit(asm.Mov.Imm32(asm.R0, int32(next())))
			emit(asm.Return())
		case 6:
			// Place the oldest unplaced label here.
			if len(refs) > 0 && len(pending) == 0 {
				pending = append(pending, refs[0])
				refs = refs[1:]
			}
		case 7:
			for n := int(next()) * 2; n > 0; n-- {
				emit(asm.LoadAbs(0, asm.Word))
			}
		}
	}
	// Place the remaining labels on returns at the end.
	for _, l := range append(pending, refs...) {
		insns = append(insns, asm.Mov.Imm32(asm.R0, int32(len(l))).WithSymbol(l), asm.Return())
	}
	insns = append(insns, asm.Mov.Imm32(asm.R0, 7), asm.Return())
	return insns
}

// FuzzLower checks that a lowered program decides exactly as its symbolic
// form does, for random programs and inputs.
func FuzzLower(f *testing.F) {
	f.Add([]byte{0, 3, 2, 1, 5, 6, 4, 7, 200, 6, 5, 9}, []byte{1, 2, 3, 4})
	f.Add([]byte{2, 0, 0, 0, 7, 255, 7, 255, 6, 5, 1}, []byte{0, 0, 0, 0})
	f.Add([]byte{3, 6, 10, 1, 4, 7, 150, 6, 6, 2, 2, 70, 1, 7, 140, 6}, []byte{9, 9, 9, 9, 9, 9, 9, 9})
	f.Add([]byte{0, 1, 1, 0xff, 0xff, 2, 6, 0, 0, 6, 2, 6, 3, 0, 5, 3}, []byte{0xff})
	f.Fuzz(func(t *testing.T, prog, input []byte) {
		insns := progFromBytes(prog)
		filter, err := Lower(insns)
		if err != nil && len(insns) > MaxInsns/2 && strings.Contains(err.Error(), "more than the kernel's") {
			return // a legitimately refused oversized program
		}
		if err != nil {
			// Otherwise only 64-bit compares with negative constants may be refused.
			for _, ins := range insns {
				if ins.OpCode.Class() == asm.JumpClass && ins.Constant < 0 {
					return
				}
			}
			t.Fatalf("Lower: %v\n%v", err, insns)
		}
		vm, err := newClassicVM(filter)
		if err != nil {
			t.Fatalf("x/net/bpf rejects the lowered program: %v", err)
		}
		data := make([]byte, 64)
		for i := range data {
			if len(input) > 0 {
				data[i] = input[i%len(input)] ^ byte(i*7)
			}
		}
		want, err := runEBPF(insns, data)
		if err != nil {
			t.Fatalf("reference: %v", err)
		}
		got, err := vm.run(data)
		if err != nil {
			t.Fatalf("vm: %v", err)
		}
		if got != want {
			t.Fatalf("lowered program returns %d, symbolic program %d\n%v", got, want, insns)
		}
	})
}
