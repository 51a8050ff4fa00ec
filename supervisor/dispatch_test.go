package supervisor

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sandlock/sandlock/bpfprog"
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
			s.isFork = make([]bool, arch.MaxNr()+1)
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
		})
	}
}
