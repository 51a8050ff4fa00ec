package bpfprog

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultDeny lists the syscalls every sandbox fails with EPERM (CLI.md's
// default deny list, plus the new mount API and pidfd_getfd, which reach the
// same powers by other doors). Names an architecture lacks are skipped.
var DefaultDeny = []string{
	"mount", "umount", "umount2", "pivot_root", "swapon", "swapoff", "reboot",
	"sethostname", "setdomainname", "kexec_load", "kexec_file_load",
	"init_module", "finit_module", "delete_module", "unshare", "setns",
	"perf_event_open", "bpf", "userfaultfd", "keyctl", "add_key", "request_key",
	"ptrace", "process_vm_readv", "process_vm_writev", "open_by_handle_at",
	"name_to_handle_at", "ioperm", "iopl", "quotactl", "quotactl_fd", "acct",
	"lookup_dcookie", "nfsservctl", "io_uring_setup", "io_uring_enter",
	"io_uring_register", "personality",
	"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
	"open_tree_attr", "mount_setattr", "pidfd_getfd",
}

// SysVIPC lists the System V IPC syscalls, denied unless the policy allows
// the group "sysv_ipc".
var SysVIPC = []string{
	"shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semctl",
	"semtimedop", "msgget", "msgsnd", "msgrcv", "msgctl", "ipc",
}

// AllowGroups are the names --extra-allow-syscall accepts.
var AllowGroups = map[string][]string{"sysv_ipc": SysVIPC}

// Notify selects groups of syscalls the filter sends to the supervisor.
type Notify uint32

// The notification groups.
const (
	// NotifyProcesses: fork, vfork and clone of a new process (not a thread:
	// a clone with CLONE_THREAD is allowed in the filter).
	NotifyProcesses Notify = 1 << iota
	// NotifyMemory: calls that can make memory writable: mmap of writable
	// private or shared anonymous memory, brk that moves the break, mremap,
	// mprotect and pkey_mprotect adding PROT_WRITE, shmget. Read-only,
	// PROT_NONE and shared file mappings, and brk(0) queries, are allowed in
	// the filter; mmap with MAP_GROWSDOWN (memory made by page faults) is
	// refused with EPERM. Also sysinfo, so that the memory a program sees is
	// the sandbox's limit.
	NotifyMemory
	// NotifyHostname: uname, and the open calls, so that the sandbox's name
	// is the hostname seen inside.
	NotifyHostname
	// NotifySignals: rt_sigaction installing a SIGCHLD handler, which the
	// supervisor makes restartable (see package supervisor).
	NotifySignals
)

// Options selects what DefaultPolicy adds to the default deny list.
type Options struct {
	// ExtraDeny names further syscalls to fail with EPERM.
	ExtraDeny []string
	// ExtraAllow names groups (see AllowGroups) to take out of the deny list.
	ExtraAllow []string
	// Notify selects the syscalls sent to the supervisor. Zero gives a
	// kernel-only filter (--no-supervisor).
	Notify Notify
	// AllowInet lifts the default ban on UDP and ICMP sockets.
	AllowInet bool
}

// Linux constants the rules compare against. They are the same on x86_64 and
// aarch64.
const (
	cloneNewMask = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS |
		unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET
	protWrite    = unix.PROT_WRITE
	mapTypeMask  = 0x3 // MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE
	mapPrivate   = unix.MAP_PRIVATE
	mapAnonymous = unix.MAP_ANONYMOUS
	sockTypeMask = 0xf
)

// ValidateSyscallName reports whether name is a syscall of some supported
// architecture, with a suggestion when it is not.
func ValidateSyscallName(name string) error {
	if name == "" {
		return fmt.Errorf("empty syscall name")
	}
	for _, a := range Arches {
		if _, ok := a.Nr(name); ok {
			return nil
		}
	}
	return fmt.Errorf("unknown syscall (names are as in syscalls(2), e.g. %q)", closest(name))
}

func closest(name string) string {
	best, bestD := "getpid", 1<<30
	for _, a := range Arches {
		for _, s := range a.table {
			if d := editDistance(name, s.Name); d < bestD {
				best, bestD = s.Name, d
			}
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// DefaultPolicy builds sandlock's filter for arch: the default deny list,
// clone3 answered ENOSYS (so libc falls back to clone, whose flags the filter
// can read), clone with a namespace flag denied, TIOCSTI and TIOCLINUX
// denied, raw and packet sockets (and, unless AllowInet, UDP and ICMP
// sockets) denied, and the notification groups of o.Notify.
func DefaultPolicy(arch *Arch, o Options) (*Policy, error) {
	p := &Policy{Arch: arch, Rules: map[int]Rule{}}
	set := func(name string, r Rule) {
		if nr, ok := arch.Nr(name); ok {
			p.Rules[nr] = r
		}
	}
	eperm := Const(Errno(unix.EPERM))
	allowed := map[string]bool{}
	for _, g := range o.ExtraAllow {
		names, ok := AllowGroups[g]
		if !ok {
			return nil, fmt.Errorf("unknown syscall group %q (known: %s)", g, strings.Join(groupNames(), ", "))
		}
		for _, n := range names {
			allowed[n] = true
		}
	}
	for _, n := range DefaultDeny {
		set(n, eperm)
	}
	for _, n := range SysVIPC {
		if !allowed[n] {
			set(n, eperm)
		}
	}
	for _, n := range o.ExtraDeny {
		if err := ValidateSyscallName(n); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		set(n, eperm)
	}
	notify := o.Notify != 0
	_, sysvAllowed := arch.Nr("shmget")
	sysvAllowed = sysvAllowed && allowed["shmget"]

	// Argument rules. A name in ExtraDeny keeps its plain EPERM.
	extra := map[string]bool{}
	for _, n := range o.ExtraDeny {
		extra[n] = true
	}
	setArg := func(name string, r Rule) {
		if !extra[name] {
			set(name, r)
		}
	}
	setArg("clone3", Const(Errno(unix.ENOSYS)))
	clone := Rule{
		Clauses: []Clause{{When: []Cond{{Arg: 0, Op: OpAnySet, Mask: cloneNewMask, Width: 32}}, Then: Errno(unix.EPERM)}},
		Else:    ActAllow,
	}
	if o.Notify&NotifyProcesses != 0 {
		clone.Clauses = append(clone.Clauses, Clause{
			When: []Cond{{Arg: 0, Op: OpAnySet, Mask: unix.CLONE_THREAD, Width: 32}}, Then: ActAllow})
		clone.Else = ActNotify
		setArg("fork", Const(ActNotify))
		setArg("vfork", Const(ActNotify))
	}
	setArg("clone", clone)
	ioctl := Rule{Clauses: []Clause{
		{When: []Cond{{Arg: 1, Op: OpEq, Value: unix.TIOCSTI, Width: 32}}, Then: Errno(unix.EPERM)},
		{When: []Cond{{Arg: 1, Op: OpEq, Value: unix.TIOCLINUX, Width: 32}}, Then: Errno(unix.EPERM)},
	}, Else: ActAllow}
	setArg("ioctl", ioctl)
	sock := Rule{Clauses: []Clause{
		{When: []Cond{{Arg: 0, Op: OpEq, Value: unix.AF_PACKET, Width: 32}}, Then: Errno(unix.EPERM)},
	}, Else: ActAllow}
	for _, af := range []uint64{unix.AF_INET, unix.AF_INET6} {
		sock.Clauses = append(sock.Clauses, Clause{When: []Cond{
			{Arg: 0, Op: OpEq, Value: af, Width: 32},
			{Arg: 1, Op: OpEq, Mask: sockTypeMask, Value: unix.SOCK_RAW, Width: 32},
		}, Then: Errno(unix.EPERM)})
		if !o.AllowInet {
			sock.Clauses = append(sock.Clauses, Clause{When: []Cond{
				{Arg: 0, Op: OpEq, Value: af, Width: 32},
				{Arg: 1, Op: OpEq, Mask: sockTypeMask, Value: unix.SOCK_DGRAM, Width: 32},
			}, Then: Errno(unix.EPERM)})
		}
	}
	setArg("socket", sock)

	if o.Notify&NotifyMemory != 0 {
		writable := Cond{Arg: 2, Op: OpNoneSet, Mask: protWrite, Width: 32}
		setArg("mmap", Rule{Clauses: []Clause{
			// A MAP_GROWSDOWN region grows by page faults, like a stack,
			// each up to RLIMIT_STACK: memory no syscall shows, made by
			// as many regions as a process maps (120 MiB under -m 64M in
			// three). Nothing common maps one (glibc's thread stacks do
			// not); refused.
			{When: []Cond{{Arg: 3, Op: OpAnySet, Mask: unix.MAP_GROWSDOWN, Width: 32}}, Then: Errno(unix.EPERM)},
			{When: []Cond{writable}, Then: ActAllow},
			{When: []Cond{{Arg: 3, Op: OpEq, Mask: mapTypeMask, Value: mapPrivate, Width: 32}}, Then: ActNotify},
			{When: []Cond{{Arg: 3, Op: OpAnySet, Mask: mapAnonymous, Width: 32}}, Then: ActNotify},
		}, Else: ActAllow})
		for _, n := range []string{"mprotect", "pkey_mprotect"} {
			setArg(n, Rule{Clauses: []Clause{{When: []Cond{writable}, Then: ActAllow}}, Else: ActNotify})
		}
		setArg("brk", Rule{Clauses: []Clause{{When: []Cond{{Arg: 0, Op: OpEq, Value: 0, Width: 64}}, Then: ActAllow}}, Else: ActNotify})
		setArg("mremap", Const(ActNotify))
		setArg("sysinfo", Const(ActNotify))
		if sysvAllowed {
			setArg("shmget", Const(ActNotify))
		}
	}
	if o.Notify&NotifyHostname != 0 {
		for _, n := range []string{"uname", "open", "openat", "openat2"} {
			setArg(n, Const(ActNotify))
		}
	}
	if o.Notify&NotifySignals != 0 {
		setArg("rt_sigaction", Rule{Clauses: []Clause{{When: []Cond{
			{Arg: 0, Op: OpEq, Value: uint64(unix.SIGCHLD), Width: 32},
			{Arg: 1, Op: OpNe, Value: 0, Width: 64},
		}, Then: ActNotify}}, Else: ActAllow})
	}
	if !notify {
		for nr, r := range p.Rules {
			if usesNotify(r) {
				return nil, fmt.Errorf("internal error: %s notifies without a supervisor", arch.SyscallName(nr))
			}
		}
	}
	return p, nil
}

func usesNotify(r Rule) bool {
	if r.Else == ActNotify {
		return true
	}
	for _, c := range r.Clauses {
		if c.Then == ActNotify {
			return true
		}
	}
	return false
}

func groupNames() []string {
	var g []string
	for k := range AllowGroups {
		g = append(g, k)
	}
	sort.Strings(g)
	return g
}

// Notified returns the syscall numbers for which some arguments give
// USER_NOTIF, sorted.
func (p *Policy) Notified() []int {
	var out []int
	for nr, r := range p.Rules {
		if usesNotify(r) {
			out = append(out, nr)
		}
	}
	sort.Ints(out)
	return out
}
