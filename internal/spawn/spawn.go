// Package spawn starts a sandbox's command the way syscall.ForkExec does
// (vfork, set-up in the child, execve) with the steps ForkExec cannot take:
// the child confines itself, between the fork and the exec — the hostname's
// namespaces, capabilities, no_new_privs, its Landlock domain, the seccomp
// filters — and hands its user-notification listener to the parent over a
// socket.
//
// That keeps every thread of sandlock out of the command's confinement.
// Landlock lets a process signal and ptrace any process of its own domain;
// had a thread of sandlock restricted itself before forking (the only way
// with ForkExec), the command could SIGSTOP sandlock (and so outlive its
// timeout), kill it, or read its memory through /proc. With the domain
// entered in the child alone, the signal scope and the ptrace restriction
// put sandlock outside. And since the fork itself is made before any filter
// exists, nothing the child does waits on the supervisor: the parent's
// thread, suspended until the exec, never depends on another goroutine.
//
// The child runs on the parent's stack while the parent is suspended
// (CLONE_VM|CLONE_VFORK), so its code is nosplit, allocates nothing and
// writes only its own frame and the child record; the parent blocks every
// signal around the fork and the child resets the Go runtime's handlers to
// the default before it unblocks them, as the runtime does for ForkExec.
//
// A program that knows at its start that it will run one command (the CLI)
// forks it earlier still (StartEarly): the child takes the steps that need
// no command on another CPU while the program initialises, then, handed the
// command, the rest (see early.go).
package spawn

import (
	"errors"
	"fmt"
	"os/signal"
	"syscall"
	"unsafe"

	"github.com/sandlock/sandlock/internal/sys"
	"golang.org/x/sys/unix"
)

// Attr says how to start the child.
type Attr struct {
	// Dir is the child's working directory ("" keeps the parent's).
	Dir string
	// Files are the child's descriptors 0, 1, 2, ... (-1 closes one).
	Files []int
	// CloseOthers closes every other descriptor at the exec (the child
	// marks them all close-on-exec, in its own descriptor table).
	CloseOthers bool
	// Setpgid puts the child in a process group of its own.
	Setpgid bool
	// Foreground also makes that group the foreground group of the
	// terminal Ctty (a descriptor of the child's).
	Foreground bool
	Ctty       int
	// Pdeathsig is the signal the child gets when the forking thread
	// exits (0: none).
	Pdeathsig syscall.Signal
	// LandlockFD is a Landlock ruleset the child restricts itself with
	// (landlock_restrict_self with LandlockFlags); -1 for none. The child
	// needs no_new_privs (NoNewPrivs, or inherited from the forking
	// thread) unless it has CAP_SYS_ADMIN.
	LandlockFD    int
	LandlockFlags uint32

	// CPUs is the child's CPU mask (nil: the parent's).
	CPUs *unix.CPUSet
	// NoFile, when set, is the child's RLIMIT_NOFILE (soft and hard).
	NoFile *unix.Rlimit
	// Rlimits are further resource limits the child sets before its exec
	// (at most maxRlimits).
	Rlimits []Rlimit
	// Hostname, when not empty, gives the child a mount and a UTS
	// namespace in which uname and /etc/hostname show it (needs
	// CAP_SYS_ADMIN; see childHostname); the Landlock ruleset, if any,
	// is let read the file. When a step fails the child goes on in the
	// namespaces as they are, with HostFallback as its first filter.
	Hostname     string
	HostFallback []unix.SockFilter
	// DropCaps empties every capability set of the child (sandlock run
	// as root); NoNewPrivs sets no_new_privs, which Landlock and the
	// filters need without CAP_SYS_ADMIN.
	DropCaps, NoNewPrivs bool
	// Filters are seccomp programs the child installs after entering its
	// Landlock domain, in order. With SendListener, the first gets a
	// user-notification listener (WAIT_KILLABLE_RECV where the kernel has
	// it), which the child sends over the socket ListenerSock (SCM_RIGHTS,
	// a one-byte message) before its exec. No syscall the child makes
	// after the filters waits on a supervisor: none of them is one a
	// filter notifies.
	Filters      [][]unix.SockFilter
	SendListener bool
	ListenerSock int
}

// Rlimit is a resource limit (unix.RLIMIT_*) a child sets before its exec.
type Rlimit struct {
	Resource int
	Limit    unix.Rlimit
}

// maxFiles bounds Attr.Files; maxFilters, Attr.Filters; maxRlimits,
// Attr.Rlimits.
const (
	maxFiles   = 16
	maxFilters = 4
	maxRlimits = 4
)

// child is everything the child reads, prepared by the parent: no
// allocation or conversion happens after the fork. The child writes only
// step, err, the hostname's outcome (hostNS, hostStep, hostErr) and the
// descriptor numbers it hands on (in hostRule and at fdSlot), while the
// parent is suspended (vfork) or waits for its exec (an early child).
type child struct {
	path       *byte
	argv, envv **byte
	dir        *byte
	fds        [maxFiles]int
	nfds       int
	setpgid    bool
	foreground bool
	ctty       uintptr
	pdeathsig  uintptr
	ppid       uintptr
	llFD       uintptr
	llFlags    uintptr
	useLL      bool
	closeRest  bool
	cpus       *unix.CPUSet
	nofile     *unix.Rlimit
	rlimits    [maxRlimits]Rlimit
	nrlimits   int
	// the filters and the hostname (in filterSet), and the namespaces
	filterSet
	hostWanted bool // make the namespaces (childHostNamespaces)
	hostRule   unix.LandlockPathBeneathAttr
	hostNS     bool          // written by the child: the namespaces were made
	hostStep   int           // or else the step that failed (hostSteps)
	hostErr    syscall.Errno // and its error
	dropCaps   bool
	nnp        bool
	capHdr     unix.CapUserHeader
	capData    [2]unix.CapUserData
	// the listener's hand-over: a one-byte message whose control data
	// carries the descriptor (written by the child at fdSlot)
	sock   uintptr
	msg    unix.Msghdr
	iov    unix.Iovec
	data   [1]byte
	cmsg   []byte
	fdSlot *int32
	reset  [65]bool // signals whose handler the child sets to SIG_DFL
	// clone3's arguments; cleared: the kernel reset the handlers itself
	// (CLONE_CLEAR_SIGHAND), so the child skips its loop over reset
	cargs   cloneArgs
	cleared bool
	// armed: an early child that set the hostname and installed the
	// filters already (Early.Arm), in the parent's descriptor table
	armed   bool
	dfl     sys.Sigaction
	oldMask uint64
	pidfd   int32

	step int
	err  syscall.Errno
}

// Steps of the child, for errors.
const (
	stepNone = iota
	stepSetpgid
	stepForeground
	stepPdeathsig
	stepChdir
	stepDup
	stepLandlock
	stepExec
	stepAffinity
	stepNoFile
	stepCaps
	stepNNP
	stepSeccomp
	stepSendListener
	stepUnshareFiles
	stepLost
	stepHostRule
	stepRlimit
)

var stepNames = [...]string{"", "setpgid", "TIOCSPGRP", "prctl(PR_SET_PDEATHSIG)", "chdir", "dup3", "landlock_restrict_self", "execve",
	"sched_setaffinity", "prlimit(RLIMIT_NOFILE)", "drop capabilities", "prctl(PR_SET_NO_NEW_PRIVS)", StepSeccomp, "send the listener", "unshare(CLONE_FILES)", "died before its exec",
	"let Landlock read /etc/hostname", "prlimit"}

// StepSeccomp is ChildError.Step when the child's seccomp() failed; with
// EBUSY, the child is already under a filter with a user-notification
// listener (a sandbox inside a sandbox): the kernel allows one per chain.
const StepSeccomp = "seccomp(SET_MODE_FILTER)"

// ChildError is a failure in the child before its exec.
type ChildError struct {
	Step string
	Err  syscall.Errno
}

func (e *ChildError) Error() string { return "in the child, " + e.Step + ": " + e.Err.Error() }

func (e *ChildError) Unwrap() error { return e.Err }

// Child is a command ready to start: everything the fork needs, built in
// advance. Start allocates nothing, so it may run on a thread whose every
// syscall could wait on a supervisor (one confined with the filter).
type Child struct {
	c *child
}

// Prepare builds the child for path with argv and env under attr. It reads
// the signals the process ignores now: signal.Ignore after Prepare is not
// seen by the child.
func Prepare(path string, argv, env []string, attr *Attr) (*Child, error) {
	if len(attr.Files) > maxFiles {
		return nil, fmt.Errorf("spawn: %d descriptors, at most %d", len(attr.Files), maxFiles)
	}
	if len(attr.Rlimits) > maxRlimits {
		return nil, fmt.Errorf("spawn: %d resource limits, at most %d", len(attr.Rlimits), maxRlimits)
	}
	c := &child{setpgid: attr.Setpgid || attr.Foreground, foreground: attr.Foreground, ctty: uintptr(attr.Ctty),
		pdeathsig: uintptr(attr.Pdeathsig), nfds: len(attr.Files), pidfd: -1,
		cpus: attr.CPUs, nofile: attr.NoFile, dropCaps: attr.DropCaps, nnp: attr.NoNewPrivs, closeRest: attr.CloseOthers}
	c.nrlimits = copy(c.rlimits[:], attr.Rlimits)
	var err error
	if err := c.prepareConfinement(attr); err != nil {
		return nil, err
	}
	if c.path, err = unix.BytePtrFromString(path); err != nil {
		return nil, err
	}
	av, err := cStrings(argv)
	if err != nil {
		return nil, err
	}
	ev, err := cStrings(env)
	if err != nil {
		return nil, err
	}
	c.argv, c.envv = &av[0], &ev[0]
	if attr.Dir != "" {
		if c.dir, err = unix.BytePtrFromString(attr.Dir); err != nil {
			return nil, err
		}
	}
	copy(c.fds[:], attr.Files)
	if attr.LandlockFD >= 0 {
		c.useLL, c.llFD, c.llFlags = true, uintptr(attr.LandlockFD), uintptr(attr.LandlockFlags)
	}
	// The Go runtime's handlers go back to the default in the child before
	// it unblocks signals (exec would do it, too late), as the runtime does
	// for ForkExec. The runtime has a handler on every signal but those
	// ignored (inherited SIG_IGN, or signal.Ignore), which stay ignored
	// through the exec. SIGCHLD's stays: its rt_sigaction is a notified
	// syscall, and the runtime ignores the signal anyway.
	for sig := 1; sig < len(c.reset); sig++ {
		s := syscall.Signal(sig)
		c.reset[sig] = s != unix.SIGKILL && s != unix.SIGSTOP && !signal.Ignored(s)
	}
	return &Child{c: c}, nil
}

// cloneArgs is struct clone_args (clone3(2)), up to the cgroup field.
type cloneArgs struct {
	flags, pidfd, childTID, parentTID, exitSignal, stack, stackSize, tls, setTID, setTIDSize, cgroup uint64
}

// noClone3 makes Start take its path for kernels without clone3 (tests).
var noClone3 bool

// cloneClearSighand is CLONE_CLEAR_SIGHAND (5.5+).
const cloneClearSighand = 0x100000000

// prepareConfinement fills in what the child's confinement reads.
func (c *child) prepareConfinement(attr *Attr) error {
	c.cargs = cloneArgs{flags: unix.CLONE_VM | unix.CLONE_VFORK | unix.CLONE_PIDFD | cloneClearSighand,
		pidfd: uint64(uintptr(unsafe.Pointer(&c.pidfd))), exitSignal: uint64(unix.SIGCHLD)}
	c.capHdr.Version = unix.LINUX_CAPABILITY_VERSION_3
	if err := c.filterSet.set(attr); err != nil {
		return err
	}
	if c.hostname != nil {
		c.hostWanted = true
		c.hostRule.Allowed_access = unix.LANDLOCK_ACCESS_FS_READ_FILE
	}
	c.sock = ^uintptr(0)
	if attr.SendListener {
		if c.nfilters == 0 {
			return errors.New("spawn: a listener needs a filter")
		}
		c.sock = uintptr(attr.ListenerSock)
		c.cmsg = unix.UnixRights(0)
		c.fdSlot = (*int32)(unsafe.Pointer(&c.cmsg[unix.CmsgLen(0)]))
		c.iov.Base, c.iov.Len = &c.data[0], 1
		c.msg.Iov, c.msg.Iovlen = &c.iov, 1
		c.msg.Control = &c.cmsg[0]
		c.msg.SetControllen(len(c.cmsg))
	}
	return nil
}

// HostNamespaces reports whether the child made the hostname's namespaces
// (Attr.Hostname); valid once Start has returned.
func (ch *Child) HostNamespaces() bool { return ch.c.hostNS }

// HostNamespacesError says why the child could not make the hostname's
// namespaces: the step that failed and its error (nil when it made them, or
// was not asked to).
func (ch *Child) HostNamespacesError() error {
	c := ch.c
	if c.hostname == nil || c.hostNS || c.hostErr == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", hostSteps[c.hostStep], c.hostErr)
}

// Start forks and execs the child, once, and returns its pid and a pidfd.
// A failing execve returns its errno (a syscall.Errno); a failure of an
// earlier step of the child, a *ChildError. The calling thread is suspended
// until the child has exec'd or failed; the child's parent-death signal
// (Attr.Pdeathsig) follows that thread. Start allocates only to return an
// error.
func (ch *Child) Start() (pid, pidfd int, err error) {
	c := ch.c
	if c.pdeathsig != 0 {
		c.ppid, _, _ = syscall.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
	}
	all := ^uint64(0)
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&c.oldMask)), 8, 0, 0)
	// clone3 with CLONE_CLEAR_SIGHAND (5.5+) resets the runtime's
	// handlers in the child in one go; older kernels get clone and the
	// child's own loop (one rt_sigaction per signal).
	c.cleared = true
	r1, err1 := uintptr(0), syscall.Errno(unix.ENOSYS)
	if !noClone3 {
		r1, err1 = rawVforkSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&c.cargs)), unsafe.Sizeof(c.cargs), 0)
	}
	if err1 == unix.ENOSYS || err1 == unix.EINVAL {
		c.cleared = false
		r1, err1 = rawVforkSyscall(unix.SYS_CLONE, unix.CLONE_VM|unix.CLONE_VFORK|unix.CLONE_PIDFD|uintptr(unix.SIGCHLD), 0, uintptr(unsafe.Pointer(&c.pidfd)))
	}
	if err1 == 0 && r1 == 0 {
		childMain(c) // never returns
	}
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&c.oldMask)), 0, 8, 0, 0)
	if err1 != 0 {
		return 0, -1, fmt.Errorf("clone: %w", err1)
	}
	return c.result(int(r1))
}

// result returns pid and the child's pidfd once the child has exec'd; if it
// failed before, it reaps it and returns its error.
func (c *child) result(pid int) (int, int, error) {
	if c.step != stepNone {
		// The child exited: reap it.
		var ws unix.WaitStatus
		for {
			if _, e := unix.Wait4(pid, &ws, 0, nil); e != unix.EINTR {
				break
			}
		}
		if c.pidfd >= 0 {
			unix.Close(int(c.pidfd))
		}
		if c.step == stepExec {
			return 0, -1, c.err
		}
		return 0, -1, &ChildError{Step: stepNames[c.step], Err: c.err}
	}
	return pid, int(c.pidfd), nil
}

// cStrings converts ss to a NULL-terminated array of C strings.
func cStrings(ss []string) ([]*byte, error) {
	out := make([]*byte, len(ss)+1)
	for i, s := range ss {
		p, err := unix.BytePtrFromString(s)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// childMain runs in the child: set-up, then execve. It never returns.
//
//go:nosplit
//go:norace
func childMain(c *child) {
	step, err := childSetup(c)
	if err == 0 {
		_, _, err = syscall.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(c.path)), uintptr(unsafe.Pointer(c.argv)), uintptr(unsafe.Pointer(c.envv)))
		step = stepExec
	}
	c.err, c.step = err, step
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 253, 0, 0)
	}
}

//go:nosplit
//go:norace
func childSetup(c *child) (int, syscall.Errno) {
	if step, err := childPrelude(c); err != 0 {
		return step, err
	}
	return childConfine(c)
}

// childPrelude takes the child's steps that depend on no command: its
// process group, its parent-death signal, the hostname's namespaces, the
// capability bounding and ambient sets, no_new_privs. None of them changes
// what the steps of childConfine may do (the effective capabilities stay
// until then). An early child (StartEarly) takes them before its command
// is known.
//
//go:nosplit
//go:norace
func childPrelude(c *child) (int, syscall.Errno) {
	var err syscall.Errno
	if c.setpgid {
		if _, _, err = syscall.RawSyscall(unix.SYS_SETPGID, 0, 0, 0); err != 0 {
			return stepSetpgid, err
		}
	}
	if c.pdeathsig != 0 {
		if _, _, err = syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, c.pdeathsig, 0, 0, 0, 0); err != 0 {
			return stepPdeathsig, err
		}
		// The parent may have died before the signal was armed.
		if ppid, _, _ := syscall.RawSyscall(unix.SYS_GETPPID, 0, 0, 0); ppid != c.ppid {
			self, _, _ := syscall.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
			syscall.RawSyscall(unix.SYS_KILL, self, c.pdeathsig, 0)
		}
	}
	if c.hostWanted {
		c.hostNS = childHostNamespaces(c)
	}
	if c.dropCaps {
		if err = childDropBounding(); err != 0 {
			return stepCaps, err
		}
	}
	if c.nnp {
		if _, _, err = syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); err != 0 {
			return stepNNP, err
		}
	}
	return stepNone, 0
}

// childConfine takes the rest of the child's steps, up to its exec.
//
//go:nosplit
//go:norace
func childConfine(c *child) (int, syscall.Errno) {
	var err syscall.Errno
	if c.foreground {
		pgrp, _, _ := syscall.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
		p32 := int32(pgrp)
		if _, _, err = syscall.RawSyscall(unix.SYS_IOCTL, c.ctty, unix.TIOCSPGRP, uintptr(unsafe.Pointer(&p32))); err != 0 {
			return stepForeground, err
		}
	}
	for sig := 1; sig < len(c.reset) && !c.cleared; sig++ {
		if c.reset[sig] {
			syscall.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&c.dfl)), 0, 8, 0, 0)
		}
	}
	if c.cpus != nil {
		if _, _, err = syscall.RawSyscall(unix.SYS_SCHED_SETAFFINITY, 0, unsafe.Sizeof(*c.cpus), uintptr(unsafe.Pointer(c.cpus))); err != 0 {
			return stepAffinity, err
		}
	}
	switch {
	case c.armed:
		// The hostname is set and the filters, which leave it to the
		// namespaces, are in place: the rule cannot fall back.
		if c.hostNS && c.useLL && !childHostRule(c) {
			return stepHostRule, c.hostErr
		}
	case c.hostNS:
		c.hostNS = childHostname(c)
	}
	if c.dir != nil {
		if _, _, err = syscall.RawSyscall(unix.SYS_CHDIR, uintptr(unsafe.Pointer(c.dir)), 0, 0); err != 0 {
			return stepChdir, err
		}
	}
	// Descriptors, as syscall.ForkExec moves them: first every source
	// that a lower target would overwrite goes above them all, then each
	// target is filled (dup3 without O_CLOEXEC).
	var fd [maxFiles]int
	n := c.nfds
	next := n
	for i := 0; i < n; i++ {
		fd[i] = c.fds[i]
		if fd[i] >= next {
			next = fd[i] + 1
		}
	}
	for i := 0; i < n; i++ {
		if fd[i] >= 0 && fd[i] < i {
			if _, _, err = syscall.RawSyscall(unix.SYS_DUP3, uintptr(fd[i]), uintptr(next), unix.O_CLOEXEC); err != 0 {
				return stepDup, err
			}
			fd[i] = next
			next++
		}
	}
	for i := 0; i < n; i++ {
		switch {
		case fd[i] < 0:
			syscall.RawSyscall(unix.SYS_CLOSE, uintptr(i), 0, 0)
		case fd[i] == i:
			if _, _, err = syscall.RawSyscall(unix.SYS_FCNTL, uintptr(i), unix.F_SETFD, 0); err != 0 {
				return stepDup, err
			}
		default:
			if _, _, err = syscall.RawSyscall(unix.SYS_DUP3, uintptr(fd[i]), uintptr(i), 0); err != 0 {
				return stepDup, err
			}
		}
	}
	if c.closeRest {
		if _, _, err = syscall.RawSyscall(unix.SYS_CLOSE_RANGE, uintptr(c.nfds), ^uintptr(0), unix.CLOSE_RANGE_CLOEXEC); err != 0 {
			return stepDup, err
		}
	}
	if c.dropCaps {
		if _, _, err = syscall.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&c.capHdr)), uintptr(unsafe.Pointer(&c.capData[0])), 0); err != 0 {
			return stepCaps, err
		}
	}
	if c.useLL {
		if _, _, err = syscall.RawSyscall(unix.SYS_LANDLOCK_RESTRICT_SELF, c.llFD, c.llFlags, 0); err != 0 {
			return stepLandlock, err
		}
	}
	// Before the filters, which may deny prlimit (--extra-deny-syscall);
	// an armed child has them already, but is armed only when none does.
	if c.nrlimits > 0 {
		if err = childRlimits(c); err != 0 {
			return stepRlimit, err
		}
	}
	if c.nfilters > 0 && !c.armed {
		if step, err := childFilters(c); err != 0 {
			return step, err
		}
	}
	// After the first filter, whose listener (like the hostname's
	// descriptor) counts against it, and before the others: a deny filter
	// (--extra-deny-syscall prlimit64) would refuse it. An armed child has
	// its filters already, and is armed only when there is no deny filter.
	if c.nofile != nil {
		if _, _, err = syscall.RawSyscall6(unix.SYS_PRLIMIT64, 0, unix.RLIMIT_NOFILE, uintptr(unsafe.Pointer(c.nofile)), 0, 0, 0); err != 0 {
			return stepNoFile, err
		}
	}
	if !c.armed {
		if err = c.installRest(); err != 0 {
			return stepSeccomp, err
		}
	}
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&c.oldMask)), 0, 8, 0, 0)
	return stepNone, 0
}

// childRlimits sets the child's Attr.Rlimits. (A function of its own: in
// childConfine, its frame took the nosplit chain over its limit.)
//
//go:nosplit
//go:norace
func childRlimits(c *child) syscall.Errno {
	for i := range c.rlimits {
		if i >= c.nrlimits {
			break
		}
		r := &c.rlimits[i]
		if _, _, err := syscall.RawSyscall6(unix.SYS_PRLIMIT64, 0, uintptr(r.Resource), uintptr(unsafe.Pointer(&r.Limit)), 0, 0, 0); err != 0 {
			return err
		}
	}
	return 0
}

// childHostNamespaces makes the hostname's namespaces in the child: the
// mount namespace becomes a slave of the host's (mounts made on the host
// later still appear inside, nothing made inside leaks out) and
// /proc/sys/kernel/hostname, which shows the reader's UTS name, is bound
// read-only over /etc/hostname. False when a step failed (hostFailed).
//
//go:nosplit
//go:norace
func childHostNamespaces(c *child) bool {
	empty := uintptr(unsafe.Pointer(&cEmpty[0]))
	etc := uintptr(unsafe.Pointer(&cEtcHostname[0]))
	if _, _, e := syscall.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_NEWNS|unix.CLONE_NEWUTS, 0, 0); e != 0 {
		return c.hostFailed(0, e)
	}
	if _, _, e := syscall.RawSyscall6(unix.SYS_MOUNT, empty, uintptr(unsafe.Pointer(&cRoot[0])), empty, unix.MS_REC|unix.MS_SLAVE, 0, 0); e != 0 {
		return c.hostFailed(1, e)
	}
	if _, _, e := syscall.RawSyscall6(unix.SYS_MOUNT, uintptr(unsafe.Pointer(&cProcHostname[0])), etc, empty, unix.MS_BIND, 0, 0); e != 0 {
		return c.hostFailed(2, e)
	}
	if _, _, e := syscall.RawSyscall6(unix.SYS_MOUNT, empty, etc, empty, unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, 0, 0); e != 0 {
		return c.hostFailed(3, e)
	}
	return true
}

// childHostname sets the hostname in the namespaces childHostNamespaces
// made and lets the Landlock ruleset read /etc/hostname there. False when
// a step failed (hostFailed).
//
//go:nosplit
//go:norace
func childHostname(c *child) bool {
	if e := c.sethostname(); e != 0 {
		return c.hostFailed(4, e)
	}
	return !c.useLL || childHostRule(c)
}

// childHostRule lets the Landlock ruleset read /etc/hostname in the
// namespaces childHostNamespaces made. False when it failed (hostFailed).
//
//go:nosplit
//go:norace
func childHostRule(c *child) bool {
	etc := uintptr(unsafe.Pointer(&cEtcHostname[0]))
	fd, _, e := syscall.RawSyscall6(unix.SYS_OPENAT, atFDCWD, etc, unix.O_PATH|unix.O_CLOEXEC, 0, 0, 0)
	if e != 0 {
		return c.hostFailed(5, e)
	}
	c.hostRule.Parent_fd = int32(fd)
	_, _, e = syscall.RawSyscall6(unix.SYS_LANDLOCK_ADD_RULE, c.llFD, unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&c.hostRule)), 0, 0, 0)
	syscall.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	if e != 0 {
		return c.hostFailed(5, e)
	}
	return true
}

// hostFailed records the step of the hostname's set-up that failed, and its error.
//
//go:nosplit
//go:norace
func (c *child) hostFailed(step int, e syscall.Errno) bool {
	c.hostStep, c.hostErr = step, e
	return false
}

// hostSteps names childHostname's steps, for HostNamespacesError.
var hostSteps = [...]string{"unshare", "make / a slave mount", "bind /proc/sys/kernel/hostname over /etc/hostname",
	"make /etc/hostname read-only", "sethostname", "let Landlock read /etc/hostname"}

// NUL-terminated arguments of childHostname.
var (
	cEmpty        = []byte{0}
	cRoot         = []byte("/\x00")
	cProcHostname = []byte("/proc/sys/kernel/hostname\x00")
	cEtcHostname  = []byte("/etc/hostname\x00")
	fdcwd         = unix.AT_FDCWD
	atFDCWD       = uintptr(fdcwd)
)

// childDropBounding empties the child's capability bounding set (dropping
// 0, 1, ... until the kernel answers EINVAL past its last capability) and
// its ambient set. The effective, permitted and inheritable sets are
// emptied later (capset in childConfine).
//
//go:nosplit
//go:norace
func childDropBounding() syscall.Errno {
	for cp := uintptr(0); cp < 64; cp++ {
		_, _, e := syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, cp, 0, 0, 0, 0)
		if e == unix.EINVAL {
			break
		}
		if e != 0 {
			return e
		}
	}
	if _, _, e := syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 && e != unix.EINVAL {
		return e
	}
	return 0
}

// childFilters installs the child's first seccomp filter and sends its
// listener to the parent (installRest installs the others).
//
//go:nosplit
//go:norace
func childFilters(c *child) (int, syscall.Errno) {
	listen := c.sock != ^uintptr(0)
	fd, e := c.install(c.hostNS, listen)
	if e != 0 {
		return stepSeccomp, e
	}
	if listen {
		*c.fdSlot = int32(fd)
		if _, _, e = syscall.RawSyscall(unix.SYS_SENDMSG, c.sock, uintptr(unsafe.Pointer(&c.msg)), 0); e != 0 {
			return stepSendListener, e
		}
	}
	return stepNone, 0
}

// filterSet is what a child installs: its seccomp filters, and with a
// hostname, the name and the first filter to use instead should the
// hostname's namespaces fail (the one with which the supervisor
// virtualizes it). A vfork or early child holds one; so does an early
// child's arming (Early.Arm).
type filterSet struct {
	filters  [maxFilters]unix.SockFprog
	nfilters int
	fallback unix.SockFprog
	hostname *byte
	hostLen  uintptr
}

// set fills f from attr's Filters, Hostname and HostFallback.
func (f *filterSet) set(attr *Attr) error {
	if len(attr.Filters) > maxFilters {
		return fmt.Errorf("spawn: %d seccomp filters, at most %d", len(attr.Filters), maxFilters)
	}
	for i, fl := range attr.Filters {
		if len(fl) == 0 || len(fl) > 0xffff {
			return fmt.Errorf("spawn: seccomp filter %d: %d instructions", i, len(fl))
		}
		f.filters[i] = unix.SockFprog{Len: uint16(len(fl)), Filter: &fl[0]}
	}
	f.nfilters = len(attr.Filters)
	if attr.Hostname != "" {
		if len(attr.Hostname) > 64 || len(attr.HostFallback) == 0 || f.nfilters == 0 {
			return fmt.Errorf("spawn: hostname %q: 1 to 64 bytes, with a fallback filter", attr.Hostname)
		}
		h := []byte(attr.Hostname)
		f.hostname, f.hostLen = &h[0], uintptr(len(h))
		f.fallback = unix.SockFprog{Len: uint16(len(attr.HostFallback)), Filter: &attr.HostFallback[0]}
	}
	return nil
}

// sethostname sets the hostname f names.
//
//go:nosplit
//go:norace
func (f *filterSet) sethostname() syscall.Errno {
	_, _, e := syscall.RawSyscall(unix.SYS_SETHOSTNAME, uintptr(unsafe.Pointer(f.hostname)), f.hostLen, 0)
	return e
}

// install installs the first filter — the fallback when f has a hostname
// but the namespaces (hostNS) failed; installRest installs the others.
// With listen, it gets a user-notification listener (WAIT_KILLABLE_RECV
// where the kernel has it, 5.19+), whose descriptor it returns.
//
//go:nosplit
//go:norace
func (f *filterSet) install(hostNS, listen bool) (uintptr, syscall.Errno) {
	first := &f.filters[0]
	if f.hostname != nil && !hostNS {
		first = &f.fallback
	}
	var flags uintptr
	if listen {
		flags = sys.FilterFlagNewListener | sys.FilterFlagWaitKillable
	}
	fd, _, e := syscall.RawSyscall(unix.SYS_SECCOMP, sys.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(first)))
	if e == unix.EINVAL && flags&sys.FilterFlagWaitKillable != 0 {
		flags &^= sys.FilterFlagWaitKillable
		fd, _, e = syscall.RawSyscall(unix.SYS_SECCOMP, sys.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(first)))
	}
	if e != 0 {
		return 0, e
	}
	return fd, 0
}

// installRest installs the filters after the first.
//
//go:nosplit
//go:norace
func (f *filterSet) installRest() syscall.Errno {
	for i := 1; i < f.nfilters && i < len(f.filters); i++ {
		if _, _, e := syscall.RawSyscall(unix.SYS_SECCOMP, sys.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&f.filters[i]))); e != 0 {
			return e
		}
	}
	return 0
}

// rawVforkSyscall is syscall's own (asm_linux_*.s): a clone with CLONE_VM
// whose child returns on the parent's stack.
func rawVforkSyscall(trap, a1, a2, a3 uintptr) (r1 uintptr, err syscall.Errno)
