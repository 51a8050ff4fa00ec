// Package spawn starts a sandbox's command the way syscall.ForkExec does
// (vfork, set-up in the child, execve) with one step ForkExec cannot take:
// the child enters its Landlock domain itself, between the fork and the
// exec.
//
// That keeps the forking thread, and with it every thread of sandlock, out
// of the command's Landlock domain. Landlock lets a process signal and
// ptrace any process of its own domain; had sandlock's thread restricted
// itself before forking (the only way with ForkExec), the command could
// SIGSTOP sandlock (and so outlive its timeout), kill it, or read its
// memory through /proc. With the domain entered in the child alone, the
// signal scope and the ptrace restriction put sandlock outside.
//
// The child runs on the parent's stack while the parent is suspended
// (CLONE_VM|CLONE_VFORK), so its code is nosplit, allocates nothing and
// writes only its own frame and the child record; the parent blocks every
// signal around the fork and the child resets the Go runtime's handlers to
// the default before it unblocks them, as the runtime does for ForkExec.
package spawn

import (
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
	// needs no_new_privs, which it inherits from the forking thread.
	LandlockFD    int
	LandlockFlags uint32
}

// maxFiles bounds Attr.Files.
const maxFiles = 16

// child is everything the child reads, prepared by the parent: no
// allocation or conversion happens after the fork. The child writes step
// and err alone.
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
	reset      [65]bool // signals whose handler the child sets to SIG_DFL
	dfl        sys.Sigaction
	oldMask    uint64
	pidfd      int32

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
)

var stepNames = [...]string{"", "setpgid", "TIOCSPGRP", "prctl(PR_SET_PDEATHSIG)", "chdir", "dup3", "landlock_restrict_self", "execve"}

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
	c := &child{setpgid: attr.Setpgid || attr.Foreground, foreground: attr.Foreground, ctty: uintptr(attr.Ctty),
		pdeathsig: uintptr(attr.Pdeathsig), nfds: len(attr.Files), pidfd: -1}
	var err error
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
		c.reset[sig] = s != unix.SIGKILL && s != unix.SIGSTOP && s != unix.SIGCHLD && !signal.Ignored(s)
	}
	return &Child{c: c}, nil
}

// Start forks and execs the child, once, and returns its pid and a pidfd.
// A failing execve returns its errno (a syscall.Errno); a failure of an
// earlier step of the child, a *ChildError. The calling goroutine must be
// locked to its thread. Start allocates only to return an error.
func (ch *Child) Start() (pid, pidfd int, err error) {
	c := ch.c
	if c.pdeathsig != 0 {
		c.ppid, _, _ = syscall.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
	}
	all := ^uint64(0)
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&c.oldMask)), 8, 0, 0)
	r1, err1 := rawVforkSyscall(unix.SYS_CLONE, unix.CLONE_VM|unix.CLONE_VFORK|unix.CLONE_PIDFD|uintptr(unix.SIGCHLD), 0, uintptr(unsafe.Pointer(&c.pidfd)))
	if err1 == 0 && r1 == 0 {
		childMain(c) // never returns
	}
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&c.oldMask)), 0, 8, 0, 0)
	if err1 != 0 {
		return 0, -1, fmt.Errorf("clone: %w", err1)
	}
	pid = int(r1)
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
	var err syscall.Errno
	if c.setpgid {
		if _, _, err = syscall.RawSyscall(unix.SYS_SETPGID, 0, 0, 0); err != 0 {
			return stepSetpgid, err
		}
	}
	if c.foreground {
		pgrp, _, _ := syscall.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
		p32 := int32(pgrp)
		if _, _, err = syscall.RawSyscall(unix.SYS_IOCTL, c.ctty, unix.TIOCSPGRP, uintptr(unsafe.Pointer(&p32))); err != 0 {
			return stepForeground, err
		}
	}
	for sig := 1; sig < len(c.reset); sig++ {
		if c.reset[sig] {
			syscall.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&c.dfl)), 0, 8, 0, 0)
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
	if c.useLL {
		if _, _, err = syscall.RawSyscall(unix.SYS_LANDLOCK_RESTRICT_SELF, c.llFD, c.llFlags, 0); err != 0 {
			return stepLandlock, err
		}
	}
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&c.oldMask)), 0, 8, 0, 0)
	return stepNone, 0
}

// rawVforkSyscall is syscall's own (asm_linux_*.s): a clone with CLONE_VM
// whose child returns on the parent's stack.
func rawVforkSyscall(trap, a1, a2, a3 uintptr) (r1 uintptr, err syscall.Errno)
