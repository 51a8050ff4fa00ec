// Package asmgen writes a bpfprog.Policy as a program in
// github.com/cilium/ebpf/asm, with symbolic labels and a readable
// disassembly, and lowers it to classic BPF, the only dialect seccomp(2)
// accepts (see Lower).
//
// The program checks the architecture, loads the syscall number, finds the
// number's rule by a balanced binary search, and loads arguments only inside
// the rules that need them, so that the kernel's seccomp action cache
// (Linux 5.11+) skips the filter for every syscall allowed whatever its
// arguments.
//
// sandlock does not link this package: importing cilium/ebpf costs about
// 0.4ms of package initialisation at every launch. tools/genfilters runs it
// ahead of time and stores the lowered default programs in bpfprog, and a
// test here checks the stored programs against a fresh Build.
package asmgen
