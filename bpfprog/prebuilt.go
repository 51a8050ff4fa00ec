package bpfprog

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"

	"golang.org/x/sys/unix"
)

//go:generate go run ../tools/genfilters -out zfilters.go

type prebuilt struct {
	arch   string
	notify Notify
	sysv   bool
	code   string // little-endian struct sock_filter array
}

// PrebuiltOptions are the option sets whose filters are generated ahead of
// time by package asmgen (tools/genfilters): kernel-only, supervised, and
// supervised with the memory ledger, each with the hostname virtualized by
// the supervisor or by namespaces (no NotifyHostname), and with System V
// IPC denied or allowed.
func PrebuiltOptions() []Options {
	var out []Options
	for _, allow := range [][]string{nil, {"sysv_ipc"}} {
		out = append(out, Options{ExtraAllow: allow})
		for _, host := range []Notify{NotifyHostname, 0} {
			sup := NotifyProcesses | NotifySignals | host
			out = append(out,
				Options{Notify: sup, ExtraAllow: allow},
				Options{Notify: sup | NotifyMemory, ExtraAllow: allow})
		}
	}
	return out
}

// Prebuilt returns the stored classic BPF for arch and o, ignoring
// o.ExtraDeny (see Filters); ok is false when o is not one of
// PrebuiltOptions.
func Prebuilt(arch *Arch, o Options) (f []unix.SockFilter, ok bool) {
	if o.AllowInet {
		return nil, false
	}
	sysv := false
	for _, g := range o.ExtraAllow {
		if g != "sysv_ipc" {
			return nil, false
		}
		sysv = true
	}
	for i := range precomputed {
		p := &precomputed[i]
		if p.arch == arch.Name && p.notify == o.Notify && p.sysv == sysv {
			return decode(p.code), true
		}
	}
	return nil, false
}

func decode(code string) []unix.SockFilter {
	f := make([]unix.SockFilter, len(code)/8)
	for i := range f {
		b := code[8*i:]
		f[i] = unix.SockFilter{
			Code: uint16(b[0]) | uint16(b[1])<<8, Jt: b[2], Jf: b[3],
			K: uint32(b[4]) | uint32(b[5])<<8 | uint32(b[6])<<16 | uint32(b[7])<<24,
		}
	}
	return f
}

// Encode is the inverse of the stored form (for tools/genfilters).
func Encode(f []unix.SockFilter) string {
	b := make([]byte, 8*len(f))
	for i, in := range f {
		binary.LittleEndian.PutUint16(b[8*i:], in.Code)
		b[8*i+2], b[8*i+3] = in.Jt, in.Jf
		binary.LittleEndian.PutUint32(b[8*i+4:], in.K)
	}
	return string(b)
}

// Classic BPF opcodes used by DenyFilter.
const (
	bpfLdWAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeqK   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfRetK   = unix.BPF_RET | unix.BPF_K
)

// DenyFilter returns a filter that fails the given syscalls with EPERM and
// allows everything else. sandlock stacks it on the main filter for
// --extra-deny-syscall: the kernel takes the strictest verdict of all
// filters (ERRNO beats USER_NOTIF and ALLOW), and a foreign architecture is
// already killed by the main filter. Names arch lacks are skipped; nil when
// none remains.
func DenyFilter(arch *Arch, names []string) ([]unix.SockFilter, error) {
	var nrs []int
	for _, n := range names {
		if err := ValidateSyscallName(n); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		if nr, ok := arch.Nr(n); ok {
			nrs = append(nrs, nr)
		}
	}
	sort.Ints(nrs)
	nrs = slices.Compact(nrs)
	if len(nrs) == 0 {
		return nil, nil
	}
	allow := unix.SockFilter{Code: bpfRetK, K: uint32(ActAllow)}
	f := []unix.SockFilter{
		{Code: bpfLdWAbs, K: OffArch},
		{Code: bpfJeqK, K: arch.AuditArch, Jt: 1},
		allow, // foreign ABI: the main filter kills it
		{Code: bpfLdWAbs, K: OffNr},
	}
	for _, nr := range nrs {
		f = append(f,
			unix.SockFilter{Code: bpfJeqK, K: uint32(nr), Jf: 1},
			unix.SockFilter{Code: bpfRetK, K: uint32(Errno(unix.EPERM))})
	}
	return append(f, allow), nil
}

// Filters returns the classic BPF programs for arch and o, to be installed
// in order: the main filter (prebuilt) and, when o.ExtraDeny names
// syscalls, a DenyFilter on top of it.
func Filters(arch *Arch, o Options) ([][]unix.SockFilter, error) {
	main, ok := Prebuilt(arch, o)
	if !ok {
		return nil, fmt.Errorf("no prebuilt filter for these options on %s", arch)
	}
	out := [][]unix.SockFilter{main}
	deny, err := DenyFilter(arch, o.ExtraDeny)
	if err != nil {
		return nil, err
	}
	if deny != nil {
		out = append(out, deny)
	}
	return out, nil
}
