package supervisor

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sandlock/sandlock/bpfprog"
	"golang.org/x/sys/unix"
)

// TestDispatchCoversFilter checks, for every architecture, that the
// dispatch table has a handler for exactly the syscalls the filter can send
// to the supervisor: a notified syscall without one would be let through
// unexamined, a handler without a notification is dead code.
func TestDispatchCoversFilter(t *testing.T) {
	for _, arch := range bpfprog.Arches {
		t.Run(arch.Name, func(t *testing.T) {
			all := bpfprog.NotifyProcesses | bpfprog.NotifyMemory | bpfprog.NotifyHostname | bpfprog.NotifySignals
			seen := map[string]bool{}
			// System V shared memory is notified once its group is allowed.
			for _, allow := range [][]string{nil, {"sysv_ipc"}} {
				pol, err := bpfprog.DefaultPolicy(arch, bpfprog.Options{Notify: all, ExtraAllow: allow})
				if err != nil {
					t.Fatal(err)
				}
				for nr, r := range pol.Rules {
					may := r.Else == bpfprog.ActNotify
					for _, c := range r.Clauses {
						may = may || c.Then == bpfprog.ActNotify
					}
					if may {
						seen[arch.SyscallName(nr)] = true
					}
				}
			}
			var notified []string
			for n := range seen {
				notified = append(notified, n)
			}
			s := &Supervisor{cfg: Config{Arch: arch}}
			s.handlers = make([]handlerFn, arch.MaxNr()+1)
			s.forkKind = make([]uint8, arch.MaxNr()+1)
			s.isMem = make([]bool, arch.MaxNr()+1)
			s.install()
			var handled []string
			for nr, h := range s.handlers {
				if h != nil {
					handled = append(handled, arch.SyscallName(nr))
				}
			}
			sort.Strings(notified)
			sort.Strings(handled)
			if diff := cmp.Diff(notified, handled); diff != "" {
				t.Errorf("notified (-) vs handled (+):\n%s", diff)
			}
			checkClasses(t, s, arch)
		})
	}
}

// checkClasses checks the tables that classify notified syscalls by number
// (fork kinds, memory calls) against their names, and the clone flags a
// fork-family notification is given.
func checkClasses(t *testing.T, s *Supervisor, arch *bpfprog.Arch) {
	t.Helper()
	var forks, mems []string
	for nr := range s.forkKind {
		if s.isFork(nr) {
			forks = append(forks, arch.SyscallName(nr))
		}
		if s.isMem[nr] {
			mems = append(mems, arch.SyscallName(nr))
		}
	}
	want := func(names ...string) []string {
		var out []string
		for _, n := range names {
			if _, ok := arch.Nr(n); ok {
				out = append(out, n)
			}
		}
		return out
	}
	sort.Strings(forks)
	sort.Strings(mems)
	if diff := cmp.Diff(want("clone", "fork", "vfork"), forks); diff != "" {
		t.Errorf("fork-family syscalls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want("brk", "mmap", "mprotect", "mremap", "pkey_mprotect", "shmget"), mems); diff != "" {
		t.Errorf("memory syscalls (-want +got):\n%s", diff)
	}
	const cloneArg = unix.CLONE_FILES | uint64(unix.SIGCHLD)
	for name, flags := range map[string]uint64{
		"fork":  uint64(unix.SIGCHLD),
		"vfork": unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD),
		"clone": cloneArg,
	} {
		nr, ok := arch.Nr(name)
		if !ok {
			continue
		}
		w := &worker{s: s}
		w.n.Data.Nr = int32(nr)
		w.n.Data.Args[0] = cloneArg
		if got := w.forkFlags(); got != flags {
			t.Errorf("forkFlags of %s = %#x, want %#x", name, got, flags)
		}
	}
}
