package asmgen

import (
	"flag"
	"fmt"
	"github.com/sandlock/sandlock/bpfprog"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// policies are the option sets every test runs over.
var policies = []struct {
	name string
	opts bpfprog.Options
}{
	{"supervised", bpfprog.Options{Notify: bpfprog.NotifyProcesses | bpfprog.NotifyMemory | bpfprog.NotifyHostname | bpfprog.NotifySignals}},
	{"processes", bpfprog.Options{Notify: bpfprog.NotifyProcesses | bpfprog.NotifySignals}},
	{"kernel_only", bpfprog.Options{}},
	{"extras", bpfprog.Options{ExtraDeny: []string{"chmod", "fchmodat"}, ExtraAllow: []string{"sysv_ipc"}, AllowInet: true,
		Notify: bpfprog.NotifyProcesses | bpfprog.NotifyMemory}},
}

func build(t testing.TB, arch *bpfprog.Arch, o bpfprog.Options) *Program {
	t.Helper()
	p, err := bpfprog.DefaultPolicy(arch, o)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := Build(p)
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

func TestGoldenDisassembly(t *testing.T) {
	for _, arch := range bpfprog.Arches {
		for _, pc := range policies {
			t.Run(arch.Name+"/"+pc.name, func(t *testing.T) {
				prog := build(t, arch, pc.opts)
				insns, err := Generate(prog.Policy)
				if err != nil {
					t.Fatal(err)
				}
				got := fmt.Sprintf("%v", insns)
				path := filepath.Join("testdata", arch.Name+"_"+pc.name+".golden")
				if *update {
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./bpfprog -update to create it)", err)
				}
				if diff := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(got, "\n")); diff != "" {
					t.Errorf("disassembly differs from %s (-want +got):\n%s", path, diff)
				}
			})
		}
	}
}

// interesting returns argument values that sit on the edges of r's conditions.
func interesting(r bpfprog.Rule) []uint64 {
	vals := []uint64{0, 1, ^uint64(0), 0xffffffff, 1 << 32}
	for _, cl := range r.Clauses {
		for _, c := range cl.When {
			m := c.EffectiveMask()
			for _, v := range []uint64{c.Value, m, c.Value | ^m, c.Value ^ 1, m & ^(m - 1), c.Value | 0xdead_0000_0000_0000} {
				vals = append(vals, v, v&0xffffffff)
			}
		}
	}
	return vals
}

// TestVMMatchesPolicy runs the lowered program in golang.org/x/net/bpf's
// classic BPF interpreter over every syscall number of each table (and past
// its end), the x32 range, a foreign architecture, the edge values of every
// argument condition and random arguments; each verdict must be the policy's.
func TestVMMatchesPolicy(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, arch := range bpfprog.Arches {
		for _, pc := range policies {
			t.Run(arch.Name+"/"+pc.name, func(t *testing.T) {
				prog := build(t, arch, pc.opts)
				vm, err := newClassicVM(prog.Filter)
				if err != nil {
					t.Fatal(err)
				}
				check := func(audit, nr uint32, args [6]uint64) {
					got, err := vm.run(seccompData(audit, nr, args))
					if err != nil {
						t.Fatalf("nr %d: %v", nr, err)
					}
					want := prog.Policy.Eval(audit, nr, args)
					if bpfprog.Action(got) != want {
						t.Fatalf("%s(%#x) arch %#x: filter says %s, policy says %s", arch.SyscallName(int(nr)), args, audit, bpfprog.Action(got), want)
					}
					ref, err := runEBPF(prog.Insns, seccompData(audit, nr, args))
					if err != nil || bpfprog.Action(ref) != want {
						t.Fatalf("%s(%#x): symbolic program says %s (%v), policy says %s", arch.SyscallName(int(nr)), args, bpfprog.Action(ref), err, want)
					}
				}
				nrs := []uint32{0x40000000, 0x40000000 + 39, 0xffffffff, 0x7fffffff}
				for nr := 0; nr <= arch.MaxNr()+16; nr++ {
					nrs = append(nrs, uint32(nr))
				}
				for _, nr := range nrs {
					var zero [6]uint64
					check(arch.AuditArch, nr, zero)
					check(0x40000003, nr, zero) // i386: int 0x80 on x86_64
					r, ok := prog.Policy.Rules[int(nr)]
					if !ok || r.IsConst() {
						continue
					}
					vals := interesting(r)
					for i := 0; i < 6; i++ {
						for _, v := range vals {
							var args [6]uint64
							args[i] = v
							check(arch.AuditArch, nr, args)
						}
					}
					for n := 0; n < 2000; n++ {
						var args [6]uint64
						for i := range args {
							args[i] = vals[rng.Intn(len(vals))]
							if rng.Intn(3) == 0 {
								args[i] = rng.Uint64()
							}
						}
						check(arch.AuditArch, nr, args)
					}
				}
			})
		}
	}
}

// TestIntent spells out, case by case, what the default filter must decide.
func TestIntent(t *testing.T) {
	x := bpfprog.X86_64
	sup := build(t, x, policies[0].opts).Policy
	kern := build(t, x, bpfprog.Options{}).Policy
	nr := func(name string) uint32 {
		n, ok := x.Nr(name)
		if !ok {
			t.Fatalf("no syscall %s", name)
		}
		return uint32(n)
	}
	eperm, enosys := bpfprog.Errno(unix.EPERM), bpfprog.Errno(unix.ENOSYS)
	cases := []struct {
		p    *bpfprog.Policy
		name string
		args [6]uint64
		want bpfprog.Action
	}{
		{sup, "getpid", [6]uint64{}, bpfprog.ActAllow},
		{sup, "personality", [6]uint64{0xffffffff}, eperm},
		{sup, "io_uring_setup", [6]uint64{}, eperm},
		{sup, "ptrace", [6]uint64{}, eperm},
		{sup, "bpf", [6]uint64{}, eperm},
		{sup, "shmget", [6]uint64{}, eperm},
		{sup, "clone3", [6]uint64{}, enosys},
		{sup, "clone", [6]uint64{unix.CLONE_NEWUSER}, eperm},
		{sup, "clone", [6]uint64{unix.CLONE_NEWNET | unix.CLONE_THREAD}, eperm},
		{sup, "clone", [6]uint64{unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND}, bpfprog.ActAllow},
		{sup, "clone", [6]uint64{uint64(unix.SIGCHLD)}, bpfprog.ActNotify},
		{sup, "clone", [6]uint64{unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD)}, bpfprog.ActNotify},
		{kern, "clone", [6]uint64{uint64(unix.SIGCHLD)}, bpfprog.ActAllow},
		{kern, "clone", [6]uint64{unix.CLONE_NEWNS}, eperm},
		{sup, "fork", [6]uint64{}, bpfprog.ActNotify},
		{sup, "ioctl", [6]uint64{0, unix.TIOCSTI}, eperm},
		{sup, "ioctl", [6]uint64{0, 1<<32 | unix.TIOCSTI}, eperm}, // junk in the upper half is ignored by the kernel
		{sup, "ioctl", [6]uint64{0, unix.TIOCLINUX}, eperm},
		{sup, "ioctl", [6]uint64{0, unix.TCGETS}, bpfprog.ActAllow},
		{sup, "socket", [6]uint64{unix.AF_INET, unix.SOCK_RAW}, eperm},
		{sup, "socket", [6]uint64{unix.AF_INET6, unix.SOCK_RAW | unix.SOCK_CLOEXEC}, eperm},
		{sup, "socket", [6]uint64{unix.AF_PACKET, unix.SOCK_DGRAM}, eperm},
		{sup, "socket", [6]uint64{unix.AF_INET, unix.SOCK_DGRAM}, eperm},
		{sup, "socket", [6]uint64{unix.AF_INET, unix.SOCK_STREAM}, bpfprog.ActAllow},
		{sup, "socket", [6]uint64{unix.AF_UNIX, unix.SOCK_DGRAM}, bpfprog.ActAllow},
		{sup, "mmap", [6]uint64{0, 4096, unix.PROT_READ, unix.MAP_PRIVATE | unix.MAP_ANONYMOUS}, bpfprog.ActAllow},
		{sup, "mmap", [6]uint64{0, 4096, unix.PROT_NONE, unix.MAP_PRIVATE | unix.MAP_ANONYMOUS}, bpfprog.ActAllow},
		{sup, "mmap", [6]uint64{0, 4096, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_PRIVATE | unix.MAP_ANONYMOUS}, bpfprog.ActNotify},
		{sup, "mmap", [6]uint64{0, 4096, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_PRIVATE, 3}, bpfprog.ActNotify}, // private file: copy-on-write memory
		{sup, "mmap", [6]uint64{0, 4096, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED | unix.MAP_ANONYMOUS}, bpfprog.ActNotify},
		{sup, "mmap", [6]uint64{0, 4096, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED, 3}, bpfprog.ActAllow},
		{sup, "mprotect", [6]uint64{0, 4096, unix.PROT_READ}, bpfprog.ActAllow},
		{sup, "mprotect", [6]uint64{0, 4096, unix.PROT_READ | unix.PROT_WRITE}, bpfprog.ActNotify},
		{sup, "brk", [6]uint64{0}, bpfprog.ActAllow},
		{sup, "brk", [6]uint64{1 << 32}, bpfprog.ActNotify},
		{sup, "mremap", [6]uint64{}, bpfprog.ActNotify},
		{sup, "uname", [6]uint64{}, bpfprog.ActNotify},
		{sup, "setsid", [6]uint64{}, bpfprog.ActAllow},
		{sup, "rt_sigaction", [6]uint64{uint64(unix.SIGCHLD), 0x1000}, bpfprog.ActNotify},
		{sup, "rt_sigaction", [6]uint64{uint64(unix.SIGCHLD), 0}, bpfprog.ActAllow},
		{sup, "rt_sigaction", [6]uint64{uint64(unix.SIGALRM), 0x1000}, bpfprog.ActAllow},
		{kern, "mmap", [6]uint64{0, 4096, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_PRIVATE | unix.MAP_ANONYMOUS}, bpfprog.ActAllow},
	}
	for _, c := range cases {
		if got := c.p.Eval(x.AuditArch, nr(c.name), c.args); got != c.want {
			t.Errorf("%s(%#x) = %s, want %s", c.name, c.args, got, c.want)
		}
	}
	if got := sup.Eval(0x40000003, nr("getpid"), [6]uint64{}); got != bpfprog.ActKillProcess {
		t.Errorf("i386 ABI: %s, want KILL_PROCESS", got)
	}
	if got := sup.Eval(x.AuditArch, 0x40000000|nr("getpid"), [6]uint64{}); got != bpfprog.ActKillProcess {
		t.Errorf("x32 ABI: %s, want KILL_PROCESS", got)
	}
}

// TestActionCacheShape checks that syscalls allowed whatever their arguments
// never load an argument, so the kernel's action cache can skip the filter
// for them: in the symbolic program, every path from the start to an ALLOW
// that loads only arch and nr is such a syscall.
func TestActionCacheShape(t *testing.T) {
	prog := build(t, bpfprog.X86_64, policies[0].opts)
	for _, s := range bpfprog.X86_64.Syscalls() {
		r, ok := prog.Policy.Rules[s.Nr]
		if ok && !(r.IsConst() && r.Else == bpfprog.ActAllow) {
			continue
		}
		// Replay the program with poisoned arguments: if it read them, the
		// verdict could depend on them.
		var a, b [6]uint64
		for i := range b {
			b[i] = ^uint64(0)
		}
		ra, _ := runEBPF(prog.Insns, seccompData(bpfprog.X86_64.AuditArch, uint32(s.Nr), a))
		rb, _ := runEBPF(prog.Insns, seccompData(bpfprog.X86_64.AuditArch, uint32(s.Nr), b))
		if bpfprog.Action(ra) != bpfprog.ActAllow || bpfprog.Action(rb) != bpfprog.ActAllow {
			t.Errorf("%s: %s / %s, want ALLOW", s.Name, bpfprog.Action(ra), bpfprog.Action(rb))
		}
		if n := argLoads(prog.Insns, uint32(s.Nr)); n != 0 {
			t.Errorf("%s: %d argument loads on its path; the kernel would not cache it", s.Name, n)
		}
	}
}

// argLoads counts the argument loads executed for syscall nr.
func argLoads(insns asm.Instructions, nr uint32) int {
	data := seccompData(bpfprog.X86_64.AuditArch, nr, [6]uint64{})
	sym := map[string]int{}
	for i, ins := range insns {
		if s := ins.Symbol(); s != "" {
			sym[s] = i
		}
	}
	loads := 0
	var r0 uint32
	for pc := 0; pc < len(insns); {
		ins := insns[pc]
		pc++
		op := ins.OpCode
		switch {
		case op.Class() == asm.LdClass:
			if ins.Constant >= bpfprog.OffArgs {
				loads++
			}
			r0 = uint32(data[ins.Constant])<<24 | uint32(data[ins.Constant+1])<<16 | uint32(data[ins.Constant+2])<<8 | uint32(data[ins.Constant+3])
		case op.Class().IsJump() && op.JumpOp() == asm.Exit:
			return loads
		case op.Class().IsJump():
			k := uint32(ins.Constant)
			taken := op.JumpOp() == asm.Ja ||
				(op.JumpOp() == asm.JEq && r0 == k) || (op.JumpOp() == asm.JNE && r0 != k) ||
				(op.JumpOp() == asm.JGT && r0 > k) || (op.JumpOp() == asm.JGE && r0 >= k) ||
				(op.JumpOp() == asm.JSet && r0&k != 0)
			if taken {
				pc = sym[ins.Reference()]
			}
		}
	}
	return loads
}

// TestLongJumps builds a policy whose rules are so long that the binary
// search must jump more than 255 instructions, and checks the lowered program
// in the interpreter.
func TestLongJumps(t *testing.T) {
	p := &bpfprog.Policy{Arch: bpfprog.X86_64, Rules: map[int]bpfprog.Rule{}}
	var clauses []bpfprog.Clause
	for i := 0; i < 150; i++ {
		clauses = append(clauses, bpfprog.Clause{When: []bpfprog.Cond{{Arg: 1, Op: bpfprog.OpEq, Value: uint64(i) << 33, Width: 64}}, Then: bpfprog.Errno(unix.Errno(i%100 + 1))})
	}
	for _, n := range []string{"read", "write", "openat", "close", "getpid"} {
		nr, _ := bpfprog.X86_64.Nr(n)
		p.Rules[nr] = bpfprog.Rule{Clauses: clauses, Else: bpfprog.ActNotify}
	}
	prog, err := Build(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(prog.Filter) < 1000 {
		t.Fatalf("program has only %d instructions; the test needs long jumps", len(prog.Filter))
	}
	far := 0
	for _, in := range prog.Filter {
		if in.Code == bpfJa && in.K > maxShort {
			far++
		}
	}
	if far == 0 {
		t.Fatal("no trampoline jump was needed; the test does not test long jumps")
	}
	vm, err := newClassicVM(prog.Filter)
	if err != nil {
		t.Fatal(err)
	}
	for nr := uint32(0); nr < 50; nr++ {
		for i := 0; i < 160; i += 7 {
			args := [6]uint64{0, uint64(i) << 33}
			got, err := vm.run(seccompData(bpfprog.X86_64.AuditArch, nr, args))
			if err != nil {
				t.Fatal(err)
			}
			if want := p.Eval(bpfprog.X86_64.AuditArch, nr, args); bpfprog.Action(got) != want {
				t.Fatalf("nr %d arg %#x: got %s want %s", nr, args[1], bpfprog.Action(got), want)
			}
		}
	}
}

func TestLowerRejects(t *testing.T) {
	ret := []asm.Instruction{asm.Mov.Imm32(asm.R0, 0).WithSymbol("end"), asm.Return()}
	cases := map[string]asm.Instructions{
		"register source":    append(asm.Instructions{asm.JEq.Reg(asm.R0, asm.R1, "end")}, ret...),
		"other register":     append(asm.Instructions{asm.JEq.Imm32(asm.R2, 1, "end")}, ret...),
		"backward jump":      {asm.Mov.Imm32(asm.R0, 1).WithSymbol("top"), asm.Return(), asm.Ja.Label("top")},
		"undefined label":    append(asm.Instructions{asm.JEq.Imm32(asm.R0, 1, "nowhere")}, ret...),
		"negative 64-bit":    append(asm.Instructions{asm.JEq.Imm(asm.R0, -1, "end")}, ret...),
		"store":              append(asm.Instructions{asm.StoreMem(asm.R10, -8, asm.R0, asm.Word)}, ret...),
		"mov without return": {asm.Mov.Imm32(asm.R0, 1), asm.LoadAbs(0, asm.Word)},
		"no return at end":   {asm.LoadAbs(0, asm.Word)},
		"empty":              {},
	}
	for name, insns := range cases {
		if _, err := Lower(insns); err == nil {
			t.Errorf("%s: lowered without error", name)
		}
	}
}

func TestOptionsErrors(t *testing.T) {
	if _, err := bpfprog.DefaultPolicy(bpfprog.X86_64, bpfprog.Options{ExtraDeny: []string{"opne"}}); err == nil || !strings.Contains(err.Error(), "open") {
		t.Errorf("unknown syscall: err = %v, want a suggestion", err)
	}
	if _, err := bpfprog.DefaultPolicy(bpfprog.X86_64, bpfprog.Options{ExtraAllow: []string{"everything"}}); err == nil {
		t.Error("unknown group accepted")
	}
	// A name that exists on another architecture is accepted and skipped.
	p, err := bpfprog.DefaultPolicy(bpfprog.AArch64, bpfprog.Options{ExtraDeny: []string{"open"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := bpfprog.AArch64.Nr("open"); ok {
		t.Fatal("aarch64 has open(2)?")
	}
	_ = p
}

// TestJumpDistances lowers a conditional jump over every distance around the
// 8-bit limit, with the true target, the false target or both far away.
func TestJumpDistances(t *testing.T) {
	for _, d := range []int{0, 1, 254, 255, 256, 257, 300, 455, 456, 511, 512, 1000, 3000} {
		for _, op := range []asm.JumpOp{asm.JEq, asm.JNE} {
			insns := asm.Instructions{asm.LoadAbs(0, asm.Word), op.Imm32(asm.R0, 5, "far")}
			for i := 0; i < d; i++ {
				insns = append(insns, asm.LoadAbs(4, asm.Word))
			}
			insns = append(insns, asm.Mov.Imm32(asm.R0, 1), asm.Return(),
				asm.Mov.Imm32(asm.R0, 2).WithSymbol("far"), asm.Return())
			f, err := Lower(insns)
			if err != nil {
				t.Fatal(err)
			}
			vm, err := newClassicVM(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, nr := range []uint32{5, 6} {
				data := seccompData(0, nr, [6]uint64{})
				got, _ := vm.run(data)
				want, _ := runEBPF(insns, data)
				if got != want {
					t.Errorf("%v over %d: nr %d gives %d, want %d", op, d, nr, got, want)
				}
			}
		}
	}
}

// TestPrebuiltCurrent checks every stored program against a fresh Build: run
// go generate ./bpfprog after changing the generator.
func TestPrebuiltCurrent(t *testing.T) {
	n := 0
	for _, arch := range bpfprog.Arches {
		for _, o := range bpfprog.PrebuiltOptions() {
			got, ok := bpfprog.Prebuilt(arch, o)
			if !ok {
				t.Fatalf("%s %+v: not prebuilt", arch, o)
			}
			want := build(t, arch, o).Filter
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s %+v: stored filter is stale (go generate ./bpfprog):\n%s", arch, o, diff)
			}
			n++
		}
	}
	if n != len(bpfprog.PrebuiltOptions())*len(bpfprog.Arches) {
		t.Errorf("%d programs stored, %d expected", len(bpfprog.PrebuiltOptions())*len(bpfprog.Arches), n)
	}
	if _, ok := bpfprog.Prebuilt(bpfprog.X86_64, bpfprog.Options{AllowInet: true}); ok {
		t.Error("options without a stored program must not use one")
	}
}

// TestRandomPoliciesMatch builds random policies — clusters of neighbouring
// syscall numbers answered alike or not, with argument rules among them,
// which the search tree groups into spans — and checks every number's verdict
// in the interpreter against the policy's.
func TestRandomPoliciesMatch(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	actions := []bpfprog.Action{bpfprog.Errno(unix.EPERM), bpfprog.Errno(unix.ENOSYS), bpfprog.ActNotify, bpfprog.ActAllow, bpfprog.ActKillProcess}
	arch := bpfprog.X86_64
	for round := 0; round < 200; round++ {
		p := &bpfprog.Policy{Arch: arch, Rules: map[int]bpfprog.Rule{}}
		for n := rng.Intn(12); n >= 0; n-- {
			start, a := rng.Intn(arch.MaxNr()+1), actions[rng.Intn(len(actions))]
			for nr := start; nr < start+1+rng.Intn(10) && nr <= arch.MaxNr(); nr++ {
				switch rng.Intn(6) {
				case 0:
					p.Rules[nr] = bpfprog.Rule{Clauses: []bpfprog.Clause{{When: []bpfprog.Cond{{Arg: 0, Op: bpfprog.OpEq, Value: 7, Width: 32}}, Then: a}}, Else: bpfprog.ActAllow}
				case 1:
					p.Rules[nr] = bpfprog.Const(actions[rng.Intn(len(actions))])
				default:
					p.Rules[nr] = bpfprog.Const(a)
				}
			}
		}
		prog, err := Build(p)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		vm, err := newClassicVM(prog.Filter)
		if err != nil {
			t.Fatal(err)
		}
		for nr := uint32(0); nr <= uint32(arch.MaxNr())+16; nr++ {
			for _, arg := range []uint64{0, 7} {
				args := [6]uint64{arg}
				got, err := vm.run(seccompData(arch.AuditArch, nr, args))
				if err != nil {
					t.Fatalf("round %d, nr %d: %v", round, nr, err)
				}
				if want := p.Eval(arch.AuditArch, nr, args); bpfprog.Action(got) != want {
					t.Fatalf("round %d: %s(%d): filter says %s, policy says %s", round, arch.SyscallName(int(nr)), arg, bpfprog.Action(got), want)
				}
			}
		}
	}
}
