// Package bpfprog generates sandlock's seccomp filter.
//
// The program is written with github.com/cilium/ebpf/asm, so it has symbolic
// labels and a readable disassembly, and is then lowered to classic BPF, the
// only dialect seccomp(2) accepts (see Lower). Its shape is chosen for the
// kernel's seccomp action cache (Linux 5.11+): it checks the architecture,
// loads the syscall number, finds the number's rule by a balanced binary
// search, and loads arguments only inside the rules that need them, so every
// syscall whose verdict is ALLOW whatever its arguments is cached by the
// kernel and never runs the filter again.
//
// A foreign architecture (for example int 0x80 on x86_64) or the x32 ABI kills
// the process. Which syscalls are denied, which are answered ENOSYS and which
// are sent to the user-space supervisor is described by a Policy; the package
// never touches the kernel except in its tests.
package bpfprog
