package asmgen

import (
	"fmt"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// Classic BPF opcodes (linux/filter.h) used by Lower.
const (
	bpfLdWAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfAndK   = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	bpfJa     = unix.BPF_JMP | unix.BPF_JA
	bpfJeqK   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJgtK   = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
	bpfJgeK   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	bpfJsetK  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	bpfRetK   = unix.BPF_RET | unix.BPF_K

	// MaxInsns is the kernel's limit on a classic BPF program (BPF_MAXINSNS).
	MaxInsns = 4096
	maxShort = 255 // the reach of a conditional jump's 8-bit offsets
)

type irKind uint8

const (
	irLoad irKind = iota // A = word at k
	irAnd                // A &= k
	irJump               // if cond(A, k) goto t else goto f
	irJa                 // goto t
	irRet                // return k
)

type irInsn struct {
	kind irKind
	op   uint16 // classic jump opcode for irJump
	k    uint32
	t, f int // target indices into the IR for irJump/irJa
	// farT/farF: the target is beyond 255 instructions and is reached
	// through an unconditional jump placed right after this one.
	farT, farF bool
}

// Lower translates a program in the restricted eBPF form that Generate
// writes into classic BPF for seccomp(2).
//
// Accepted instructions: LoadAbs of a word; And of R0 with a constant;
// conditional jumps comparing R0 with a constant (JEq, JNE, JGT, JGE, JLT,
// JLE, JSet; 32- or 64-bit forms, which agree because R0 only ever holds a
// 32-bit word, except for a 64-bit compare with a negative constant, which is
// refused); Ja; and Mov of a constant to R0 immediately followed by
// Return. Jumps name their targets by symbol and must go forward. A
// conditional jump whose target is more than 255 instructions away, beyond
// the reach of classic BPF's 8-bit offsets, is routed through an
// unconditional jump (32-bit offset) placed right after it.
func Lower(insns asm.Instructions) ([]unix.SockFilter, error) {
	ir, err := toIR(insns)
	if err != nil {
		return nil, err
	}
	pos := layout(ir)
	out := make([]unix.SockFilter, 0, pos[len(ir)])
	for i, in := range ir {
		switch in.kind {
		case irLoad:
			out = append(out, unix.SockFilter{Code: bpfLdWAbs, K: in.k})
		case irAnd:
			out = append(out, unix.SockFilter{Code: bpfAndK, K: in.k})
		case irRet:
			out = append(out, unix.SockFilter{Code: bpfRetK, K: in.k})
		case irJa:
			out = append(out, unix.SockFilter{Code: bpfJa, K: uint32(pos[in.t] - pos[i] - 1)})
		case irJump:
			here := pos[i]
			j := unix.SockFilter{Code: in.op, K: in.k}
			tramp := here + 1
			if in.farT {
				j.Jt = uint8(tramp - here - 1)
				tramp++
			} else {
				j.Jt = uint8(pos[in.t] - here - 1)
			}
			if in.farF {
				j.Jf = uint8(tramp - here - 1)
			} else {
				j.Jf = uint8(pos[in.f] - here - 1)
			}
			out = append(out, j)
			at := here + 1
			if in.farT {
				out = append(out, unix.SockFilter{Code: bpfJa, K: uint32(pos[in.t] - at - 1)})
				at++
			}
			if in.farF {
				out = append(out, unix.SockFilter{Code: bpfJa, K: uint32(pos[in.f] - at - 1)})
			}
		}
	}
	if len(out) > MaxInsns {
		return nil, fmt.Errorf("program has %d instructions, more than the kernel's %d", len(out), MaxInsns)
	}
	return out, nil
}

// layout decides which jumps need trampolines and returns the position of
// each IR instruction in the output (pos[len(ir)] is the program length).
// Widening a jump only moves later code further away, so the loop ends.
func layout(ir []irInsn) []int {
	pos := make([]int, len(ir)+1)
	for {
		p := 0
		for i, in := range ir {
			pos[i] = p
			p++
			if in.farT {
				p++
			}
			if in.farF {
				p++
			}
		}
		pos[len(ir)] = p
		changed := false
		for i := range ir {
			in := &ir[i]
			if in.kind != irJump {
				continue
			}
			if !in.farT && pos[in.t]-pos[i]-1 > maxShort {
				in.farT, changed = true, true
			}
			if !in.farF && pos[in.f]-pos[i]-1 > maxShort {
				in.farF, changed = true, true
			}
		}
		if !changed {
			return pos
		}
	}
}

func toIR(insns asm.Instructions) ([]irInsn, error) {
	// Map eBPF instruction index -> IR index, symbols -> eBPF index.
	// Mov+Return pairs become one IR instruction.
	irIndex := make([]int, len(insns)+1)
	symbols := map[string]int{}
	n := 0
	for i := 0; i < len(insns); i++ {
		irIndex[i] = n
		if s := insns[i].Symbol(); s != "" {
			if _, dup := symbols[s]; dup {
				return nil, fmt.Errorf("instruction %d: symbol %q defined twice", i, s)
			}
			symbols[s] = i
		}
		if isMovR0(insns[i]) && i+1 < len(insns) && isReturn(insns[i+1]) {
			if insns[i+1].Symbol() != "" {
				return nil, fmt.Errorf("instruction %d: Return may not carry a symbol; label the Mov before it", i+1)
			}
			i++
			irIndex[i] = n
		}
		n++
	}
	irIndex[len(insns)] = n

	target := func(i int, ins asm.Instruction) (int, error) {
		ref := ins.Reference()
		if ref == "" {
			return 0, fmt.Errorf("instruction %d (%v): jump without a symbolic target", i, ins)
		}
		j, ok := symbols[ref]
		if !ok {
			return 0, fmt.Errorf("instruction %d: jump to undefined symbol %q", i, ref)
		}
		if j <= i {
			return 0, fmt.Errorf("instruction %d: jump to %q goes backwards; classic BPF only jumps forward", i, ref)
		}
		return irIndex[j], nil
	}

	ir := make([]irInsn, 0, n)
	for i := 0; i < len(insns); i++ {
		ins := insns[i]
		op := ins.OpCode
		switch {
		case op.Class() == asm.LdClass && op.Mode() == asm.AbsMode && op.Size() == asm.Word:
			if ins.Constant < 0 || ins.Constant > 1<<16 {
				return nil, fmt.Errorf("instruction %d: load offset %d out of range", i, ins.Constant)
			}
			ir = append(ir, irInsn{kind: irLoad, k: uint32(ins.Constant)})
		case op.Class().IsALU() && op.ALUOp() == asm.And && op.Source() == asm.ImmSource && ins.Dst == asm.R0:
			ir = append(ir, irInsn{kind: irAnd, k: uint32(ins.Constant)})
		case isMovR0(ins):
			if i+1 >= len(insns) || !isReturn(insns[i+1]) {
				return nil, fmt.Errorf("instruction %d: Mov to R0 must be followed by Return", i)
			}
			ir = append(ir, irInsn{kind: irRet, k: uint32(ins.Constant)})
			i++
		case op.Class().IsJump() && op.JumpOp() == asm.Ja:
			t, err := target(i, ins)
			if err != nil {
				return nil, err
			}
			ir = append(ir, irInsn{kind: irJa, t: t})
		case op.Class().IsJump() && op.Source() == asm.ImmSource && ins.Dst == asm.R0:
			t, err := target(i, ins)
			if err != nil {
				return nil, err
			}
			if op.Class() == asm.JumpClass && ins.Constant < 0 && op.JumpOp() != asm.JSet {
				// A 64-bit compare sees the sign-extended constant; classic
				// BPF would compare its low word and decide differently.
				return nil, fmt.Errorf("instruction %d (%v): 64-bit compare with a negative constant; use the Imm32 form", i, ins)
			}
			f := irIndex[i+1]
			if f >= n {
				return nil, fmt.Errorf("instruction %d: conditional jump at the end of the program", i)
			}
			k := uint32(ins.Constant)
			var j irInsn
			switch op.JumpOp() {
			case asm.JEq:
				j = irInsn{op: bpfJeqK, t: t, f: f}
			case asm.JNE:
				j = irInsn{op: bpfJeqK, t: f, f: t}
			case asm.JGT:
				j = irInsn{op: bpfJgtK, t: t, f: f}
			case asm.JGE:
				j = irInsn{op: bpfJgeK, t: t, f: f}
			case asm.JLT:
				j = irInsn{op: bpfJgeK, t: f, f: t}
			case asm.JLE:
				j = irInsn{op: bpfJgtK, t: f, f: t}
			case asm.JSet:
				j = irInsn{op: bpfJsetK, t: t, f: f}
			default:
				return nil, fmt.Errorf("instruction %d (%v): jump has no classic BPF form", i, ins)
			}
			j.kind, j.k = irJump, k
			ir = append(ir, j)
		default:
			return nil, fmt.Errorf("instruction %d (%v): no classic BPF form", i, ins)
		}
	}
	if len(ir) == 0 {
		return nil, fmt.Errorf("empty program")
	}
	if last := ir[len(ir)-1]; last.kind != irRet && last.kind != irJa {
		return nil, fmt.Errorf("program does not end with a return")
	}
	return ir, nil
}

func isMovR0(ins asm.Instruction) bool {
	op := ins.OpCode
	return op.Class().IsALU() && op.ALUOp() == asm.Mov && op.Source() == asm.ImmSource && ins.Dst == asm.R0
}

func isReturn(ins asm.Instruction) bool {
	return ins.OpCode.Class().IsJump() && ins.OpCode.JumpOp() == asm.Exit
}
