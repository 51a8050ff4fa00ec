package asmgen

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/cilium/ebpf/asm"
	"github.com/sandlock/sandlock/bpfprog"
	"golang.org/x/sys/unix"
)

// Package doc is in doc.go.

// Generate writes p as an eBPF-dialect program with symbolic labels, in the
// restricted form that Lower translates to classic BPF: the only register is
// R0 (classic BPF's accumulator A). Every instruction carries a comment
// (syscall names, conditions), shown in the disassembly.
func Generate(p *bpfprog.Policy) (asm.Instructions, error) { return generate(p, true) }

func generate(p *bpfprog.Policy, annotate bool) (asm.Instructions, error) {
	if p.Arch == nil {
		return nil, fmt.Errorf("policy has no architecture")
	}
	nrs := make([]int, 0, len(p.Rules))
	for nr, r := range p.Rules {
		if nr < 0 {
			return nil, fmt.Errorf("negative syscall number %d", nr)
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("rule for %s: %w", p.Arch.SyscallName(nr), err)
		}
		nrs = append(nrs, nr)
	}
	sort.Ints(nrs)

	g := &gen{p: p, alias: map[string]string{}, stubs: map[bpfprog.Action]bool{}, annotate: annotate}
	g.emit(g.note(asm.LoadAbs(bpfprog.OffArch, asm.Word), "A = seccomp_data.arch"))
	g.emit(g.note(asm.JNE.Imm32(asm.R0, int32(p.Arch.AuditArch), g.stub(bpfprog.ActKillProcess)), "foreign ABI (%s is %#x)", p.Arch.Name, p.Arch.AuditArch))
	g.emit(g.note(asm.LoadAbs(bpfprog.OffNr, asm.Word), "A = seccomp_data.nr"))
	if p.Arch.X32Bit != 0 {
		g.emit(g.note(asm.JGE.Imm32(asm.R0, int32(p.Arch.X32Bit), g.stub(bpfprog.ActKillProcess)), "x32 ABI"))
	}
	g.tree(nrs)
	for _, nr := range nrs {
		if r := p.Rules[nr]; !r.IsConst() {
			g.rule(p.Arch.SyscallName(nr), r)
		}
	}
	// Shared return stubs, in a fixed order for a stable disassembly.
	stubs := make([]bpfprog.Action, 0, len(g.stubs))
	for a := range g.stubs {
		stubs = append(stubs, a)
	}
	sort.Slice(stubs, func(i, j int) bool { return stubs[i] < stubs[j] })
	for _, a := range stubs {
		g.label(stubLabel(a))
		g.ret(a)
	}
	if g.pending != "" {
		return nil, fmt.Errorf("internal error: dangling label %s", g.pending)
	}
	for i, ins := range g.insns {
		if to, ok := g.alias[ins.Reference()]; ok {
			g.insns[i] = ins.WithReference(to)
		}
	}
	return g.insns, nil
}

type gen struct {
	p       *bpfprog.Policy
	insns   asm.Instructions
	pending string            // label for the next emitted instruction
	alias   map[string]string // label -> label of the same instruction
	stubs   map[bpfprog.Action]bool
	uniq    int
	comment string // for the next argument load

	annotate bool
}

// note attaches a comment to an instruction; it shows in the disassembly.
// Without annotations (Build, at every launch) it costs nothing.
func (g *gen) note(ins asm.Instruction, format string, args ...any) asm.Instruction {
	if !g.annotate {
		return ins
	}
	return ins.WithSource(asm.Comment(fmt.Sprintf(format, args...)))
}

func (g *gen) emit(ins asm.Instruction) {
	if g.pending != "" {
		ins = ins.WithSymbol(g.pending)
		g.pending = ""
	}
	g.insns = append(g.insns, ins)
}

// label names the next emitted instruction. A second label for the same
// instruction becomes an alias of the first.
func (g *gen) label(l string) {
	if g.pending != "" {
		g.alias[l] = g.pending
		return
	}
	g.pending = l
}

func (g *gen) ret(a bpfprog.Action) {
	g.emit(g.note(asm.Mov.Imm32(asm.R0, int32(a)), "return %s", a))
	g.emit(asm.Return())
}

// stub returns the label of the shared instruction that returns a.
func (g *gen) stub(a bpfprog.Action) string {
	g.stubs[a] = true
	return stubLabel(a)
}

func (g *gen) target(nr int) string {
	r := g.p.Rules[nr]
	if r.IsConst() {
		return g.stub(r.Else)
	}
	return "sys_" + g.p.Arch.SyscallName(nr)
}

// span is a run of consecutive syscall numbers with the same target: a
// syscall with a rule of its own, or a run of numbers answered alike
// (the default deny list is full of neighbours: mount to ioperm, the System
// V calls, io_uring and the new mount API).
type span struct {
	lo, hi int
	target string
}

// spans groups the sorted numbers nrs into spans. Only constant rules
// share a target (a shared return); a rule of its own has its syscall's
// label, which no other number has, so it always makes a span alone.
func (g *gen) spans(nrs []int) []span {
	var out []span
	for _, nr := range nrs {
		t := g.target(nr)
		if n := len(out); n > 0 && out[n-1].hi == nr-1 && out[n-1].target == t {
			out[n-1].hi = nr
			continue
		}
		out = append(out, span{nr, nr, t})
	}
	return out
}

// tree emits a balanced binary search for the syscall number (in R0) over
// the spans of nrs, jumping to each span's rule or return; numbers without
// a rule are allowed. Every program starts with it: each instruction saved
// is one the kernel converts, JIT-compiles and runs, for every syscall
// number, when it builds its action cache at each launch.
func (g *gen) tree(nrs []int) {
	g.spanTree(g.spans(nrs), int64(1)<<32-1)
}

// spanTree searches ss, all of whose numbers are at most max, as is the
// number in R0.
func (g *gen) spanTree(ss []span, max int64) {
	if len(ss) <= 3 {
		// Downwards: past a span (R0 below its low end) the bound falls.
		for i := len(ss) - 1; i >= 0; i-- {
			s := ss[i]
			if s.lo == s.hi {
				g.emit(g.note(asm.JEq.Imm32(asm.R0, int32(s.lo), s.target), "%s", g.p.Arch.SyscallName(s.lo)))
				continue
			}
			if int64(s.hi) < max {
				g.emit(g.note(asm.JGT.Imm32(asm.R0, int32(s.hi), g.stub(bpfprog.ActAllow)), "above %s", g.p.Arch.SyscallName(s.hi)))
			}
			g.emit(g.note(asm.JGE.Imm32(asm.R0, int32(s.lo), s.target), "%s to %s", g.p.Arch.SyscallName(s.lo), g.p.Arch.SyscallName(s.hi)))
			max = int64(s.lo) - 1
		}
		g.emit(asm.Ja.Label(g.stub(bpfprog.ActAllow)))
		return
	}
	mid := len(ss) / 2
	s := ss[mid]
	right := "gt_" + g.p.Arch.SyscallName(s.hi)
	if s.lo == s.hi {
		g.emit(g.note(asm.JEq.Imm32(asm.R0, int32(s.lo), s.target), "%s", g.p.Arch.SyscallName(s.lo)))
		g.emit(asm.JGT.Imm32(asm.R0, int32(s.hi), right))
	} else {
		g.emit(asm.JGT.Imm32(asm.R0, int32(s.hi), right))
		g.emit(g.note(asm.JGE.Imm32(asm.R0, int32(s.lo), s.target), "%s to %s", g.p.Arch.SyscallName(s.lo), g.p.Arch.SyscallName(s.hi)))
	}
	g.spanTree(ss[:mid], int64(s.lo)-1)
	g.label(right)
	g.spanTree(ss[mid+1:], max)
}

// rule emits the clauses of a rule that depends on arguments.
func (g *gen) rule(name string, r bpfprog.Rule) {
	g.label("sys_" + name)
	for i, cl := range r.Clauses {
		next := name + "_" + strconv.Itoa(i+1)
		if g.annotate {
			g.comment = name + ": if " + cl.String()
		}
		for _, c := range cl.When {
			g.cond(c, next)
		}
		g.ret(cl.Then)
		g.label(next)
	}
	g.ret(r.Else)
}

func (g *gen) load(arg int, hi bool, mask uint32) {
	off := bpfprog.OffArgs + 8*arg
	if hi {
		off += 4
	}
	ins := asm.LoadAbs(int32(off), asm.Word)
	if g.comment != "" {
		ins = g.note(ins, "%s", g.comment)
		g.comment = ""
	}
	g.emit(ins)
	if mask != 0xffffffff {
		g.emit(asm.And.Imm32(asm.R0, int32(mask)))
	}
}

// cond emits a test of c that falls through when c holds and jumps to fail
// when it does not.
func (g *gen) cond(c bpfprog.Cond, fail string) {
	m := c.EffectiveMask()
	mlo, mhi := uint32(m), uint32(m>>32)
	vlo, vhi := uint32(c.Value), uint32(c.Value>>32)
	hasHi := mhi != 0
	g.uniq++
	pass := "ok_" + strconv.Itoa(g.uniq)
	switch c.Op {
	case bpfprog.OpEq:
		g.load(c.Arg, false, mlo)
		g.emit(asm.JNE.Imm32(asm.R0, int32(vlo), fail))
		if hasHi {
			g.load(c.Arg, true, mhi)
			g.emit(asm.JNE.Imm32(asm.R0, int32(vhi), fail))
		}
	case bpfprog.OpNe:
		if !hasHi {
			g.load(c.Arg, false, mlo)
			g.emit(asm.JEq.Imm32(asm.R0, int32(vlo), fail))
			return
		}
		g.load(c.Arg, false, mlo)
		g.emit(asm.JNE.Imm32(asm.R0, int32(vlo), pass))
		g.load(c.Arg, true, mhi)
		g.emit(asm.JEq.Imm32(asm.R0, int32(vhi), fail))
		g.label(pass)
	case bpfprog.OpAnySet:
		if !hasHi {
			g.load(c.Arg, false, 0xffffffff)
			g.emit(asm.JSet.Imm32(asm.R0, int32(mlo), pass))
			g.emit(asm.Ja.Label(fail))
			g.label(pass)
			return
		}
		g.load(c.Arg, false, 0xffffffff)
		g.emit(asm.JSet.Imm32(asm.R0, int32(mlo), pass))
		g.load(c.Arg, true, 0xffffffff)
		g.emit(asm.JSet.Imm32(asm.R0, int32(mhi), pass))
		g.emit(asm.Ja.Label(fail))
		g.label(pass)
	case bpfprog.OpNoneSet:
		g.load(c.Arg, false, 0xffffffff)
		g.emit(asm.JSet.Imm32(asm.R0, int32(mlo), fail))
		if hasHi {
			g.load(c.Arg, true, 0xffffffff)
			g.emit(asm.JSet.Imm32(asm.R0, int32(mhi), fail))
		}
	}
}

// stubLabel is the symbol of the shared return instruction for a.
func stubLabel(a bpfprog.Action) string {
	switch a.Kind() {
	case bpfprog.ActErrno:
		name := unix.ErrnoName(unix.Errno(a.Data()))
		if name == "" {
			return "ret_errno_" + strconv.Itoa(int(a.Data()))
		}
		return "ret_" + name
	case bpfprog.ActKillProcess:
		return "ret_kill"
	case bpfprog.ActNotify:
		return "ret_notify"
	case bpfprog.ActAllow:
		return "ret_allow"
	case bpfprog.ActTrap:
		return "ret_trap"
	case bpfprog.ActLog:
		return "ret_log"
	}
	return fmt.Sprintf("ret_%#x", uint32(a))
}
