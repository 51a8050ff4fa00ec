package bpfprog

import (
	"fmt"
	"runtime"
	"sort"
	"strconv"
)

//go:generate go run ../tools/gensyscalls -out .

// Syscall is one entry of an architecture's syscall table.
type Syscall struct {
	Name string
	Nr   int
}

// Arch describes one syscall ABI the filter can be generated for.
type Arch struct {
	// Name is the kernel's name for the architecture (x86_64, aarch64).
	Name string
	// GOARCH is Go's name for it.
	GOARCH string
	// AuditArch is the AUDIT_ARCH_* value the kernel reports in seccomp_data.arch.
	AuditArch uint32
	// X32Bit, when non-zero, marks syscall numbers of a second ABI that shares
	// AuditArch (x32 on x86_64); numbers with the bit set kill the process.
	X32Bit uint32

	table  []Syscall // ordered by number
	byName []Syscall // ordered by name
}

func newArch(name, goarch string, audit, x32 uint32, table, byName []Syscall) *Arch {
	return &Arch{Name: name, GOARCH: goarch, AuditArch: audit, X32Bit: x32, table: table, byName: byName}
}

// The architectures sandlock knows. Both tables are compiled into every
// build so that tests can check the aarch64 program on an x86_64 host.
var (
	X86_64  = newArch("x86_64", "amd64", 0xc000003e, 0x40000000, x86_64Syscalls, x86_64ByName)
	AArch64 = newArch("aarch64", "arm64", 0xc00000b7, 0, aarch64Syscalls, aarch64ByName)
)

// Arches lists every supported architecture.
var Arches = []*Arch{X86_64, AArch64}

// Native returns the architecture this binary runs on, or an error naming it.
func Native() (*Arch, error) {
	for _, a := range Arches {
		if a.GOARCH == runtime.GOARCH {
			return a, nil
		}
	}
	return nil, fmt.Errorf("architecture %s is not supported (supported: x86_64, aarch64)", runtime.GOARCH)
}

// Nr returns the number of the named syscall on a, and whether a has it.
func (a *Arch) Nr(name string) (int, bool) {
	i := sort.Search(len(a.byName), func(i int) bool { return a.byName[i].Name >= name })
	if i < len(a.byName) && a.byName[i].Name == name {
		return a.byName[i].Nr, true
	}
	return 0, false
}

// SyscallName returns the name of syscall nr on a, or "syscall_<nr>".
func (a *Arch) SyscallName(nr int) string {
	i := sort.Search(len(a.table), func(i int) bool { return a.table[i].Nr >= nr })
	if i < len(a.table) && a.table[i].Nr == nr {
		return a.table[i].Name
	}
	return "syscall_" + strconv.Itoa(nr)
}

// Syscalls returns a's table ordered by number. The slice must not be modified.
func (a *Arch) Syscalls() []Syscall { return a.table }

// MaxNr returns the highest syscall number in a's table.
func (a *Arch) MaxNr() int { return a.table[len(a.table)-1].Nr }

// Names returns every syscall name of a, sorted.
func (a *Arch) Names() []string {
	names := make([]string, 0, len(a.table))
	for _, s := range a.table {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}

// String returns a.Name.
func (a *Arch) String() string { return a.Name }
