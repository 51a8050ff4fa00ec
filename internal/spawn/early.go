package spawn

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/sandlock/sandlock/internal/sys"
	"golang.org/x/sys/unix"
)

// An early child is forked before its command is known, so that the steps
// that depend on no command (childPrelude: its process group, its
// parent-death signal, the hostname's namespaces, the capability bounding
// set, no_new_privs — a fifth of a millisecond here) run on another CPU
// while sandlock's runtime starts and its command line is parsed. Once the
// command is prepared (Prepare), Go hands it over and the early child takes
// the rest of the steps (childConfine) and execs, while the parent builds
// the supervisor.
//
// Unlike the vfork child, it runs beside its parent, not on its stack: it
// shares the parent's memory (CLONE_VM) but runs on a stack of its own,
// mapped for it, with the runtime's signal handlers reset by the kernel
// (CLONE_CLEAR_SIGHAND) and every signal blocked, and it shares the
// parent's descriptor table (CLONE_FILES) until it is handed its command,
// when it takes a copy of its own (unshare). Its code is nosplit, as the
// vfork child's is, and it reads what the parent writes only after the
// hand-over, an atomic store. It waits for it yielding the CPU (a
// cross-CPU wake-up costs tens of microseconds here), then, after a while,
// on a futex. The parent learns of its exec or death through
// CLONE_CHILD_CLEARTID, which the kernel clears at both.
//
// It can also be armed (Arm) as soon as the policy is known, before the
// command is prepared: it then sets the hostname and installs the filters
// — a tenth of a millisecond of the kernel's, the longest of its steps —
// while its parent builds the Landlock ruleset and prepares the command.
// An armed child keeps the parent's descriptor table until its exec, which
// copies it (the kernel unshares a shared table at execve): the filter's
// listener is made in it, for the parent to use as it is, and the child
// only makes 0, 1 and 2 inheritable and marks every other descriptor
// close-on-exec (which the parent's are already), so Go takes only a
// command whose descriptors are the parent's own 0, 1 and 2. Its steps
// after the filters are syscalls sandlock's filters neither deny nor
// notify (the caller arms only with those).

// States of an early child (earlyChild.state).
const (
	earlyReady    = iota // taking its first steps or waiting, spinning
	earlySleeping        // waiting on the futex
	earlyGo              // handed its command
	earlyAbort           // to exit
	earlyArm             // handed its hostname and filters (Arm)
)

// earlyStack is the size of an early child's stack: its nosplit code needs
// less than a page.
const earlyStack = 64 << 10

// earlyStackStatic is the stack of the first early child (of any, while no
// other uses it): mapping one cost the program's start some 20
// microseconds, on the way to the child's fork. earlyStackUsed says a
// child, not yet exec'd or gone, runs on it.
var (
	earlyStackStatic [earlyStack]byte
	earlyStackUsed   atomic.Bool
)

// earlySpins is how many times an early child yields the CPU before it
// sleeps on the futex.
const earlySpins = 4000

// earlyChild is what an early child shares with its parent.
type earlyChild struct {
	c     child       // the prelude's settings and results
	cpus  unix.CPUSet // the parent's CPU mask at the fork
	state uint32      // earlyReady, ...
	tid   uint32      // cleared by the kernel at the child's exec or exit
	next  *child      // the command, from the hand-over on
	arm   armed       // its hostname and filters, from Arm on
}

// armed is what Arm hands an early child before its command: it sets the
// hostname and installs the filters while the parent prepares the rest.
// The child writes listener (the first filter's listener, in the
// descriptor table it still shares with the parent) and the outcome.
type armed struct {
	wanted bool // set by Arm before the state says so
	filterSet
	listen   bool
	listener int32
	step     int
	err      syscall.Errno
}

// Early is an early child (see StartEarly).
type Early struct {
	e     *earlyChild
	stack []byte
	// static: stack is earlyStackStatic
	static bool
	pid    int
	done   bool
	// keep holds what the child reads through the pointers of e.arm.
	keep [][]unix.SockFilter
}

var (
	earlyMu  sync.Mutex
	earlyOne *Early
)

// StartEarly forks the early child that the next sandbox of this program
// takes (TakeEarly), as package sandbox starts its command: in a process
// group of its own, killed when the calling thread exits, in the hostname's
// namespaces, without capabilities (when the process has any) and with
// no_new_privs. The calling thread should be one that never exits (a
// program's init runs on the main thread). Where the kernel lacks clone3
// or the architecture has no early child, it returns an error and the next
// sandbox forks as usual.
func StartEarly() error {
	if !earlySupported || noClone3 {
		return errors.New("spawn: no early child on this architecture")
	}
	e := &earlyChild{tid: 1, arm: armed{listener: -1}}
	c := &e.c
	c.setpgid, c.pdeathsig, c.hostWanted, c.dropCaps, c.nnp = true, uintptr(syscall.SIGKILL), true, sys.HasAnyCap(), true
	c.pidfd = -1
	c.ppid, _, _ = syscall.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
	stack, static := earlyStackStatic[:], earlyStackUsed.CompareAndSwap(false, true)
	if !static {
		var err error
		stack, err = unix.Mmap(-1, 0, earlyStack, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_STACK)
		if err != nil {
			return fmt.Errorf("spawn: early child's stack: %w", err)
		}
	}
	args := cloneArgs{flags: unix.CLONE_VM | unix.CLONE_FILES | unix.CLONE_PIDFD | unix.CLONE_CHILD_CLEARTID | cloneClearSighand,
		pidfd: uint64(uintptr(unsafe.Pointer(&c.pidfd))), childTID: uint64(uintptr(unsafe.Pointer(&e.tid))),
		exitSignal: uint64(unix.SIGCHLD), stack: uint64(uintptr(unsafe.Pointer(&stack[0]))), stackSize: earlyStack}
	all := ^uint64(0)
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&c.oldMask)), 8, 0, 0)
	pid, errno := rawCloneEarly(&args, unsafe.Sizeof(args), earlyMainPC(), e)
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&c.oldMask)), 0, 8, 0, 0)
	if errno != 0 {
		releaseStack(stack, static)
		return fmt.Errorf("spawn: early child: clone3: %w", errno)
	}
	awayFromCaller(int(pid), &e.cpus)
	earlyMu.Lock()
	old := earlyOne
	earlyOne = &Early{e: e, stack: stack, static: static, pid: int(pid)}
	earlyMu.Unlock()
	if old != nil {
		old.Abort()
	}
	return nil
}

// TakeEarly returns the early child StartEarly made, once; nil if none.
func TakeEarly() *Early {
	earlyMu.Lock()
	defer earlyMu.Unlock()
	e := earlyOne
	earlyOne = nil
	return e
}

// AbortEarly ends the early child nobody took, if any.
func AbortEarly() {
	if e := TakeEarly(); e != nil {
		e.Abort()
	}
}

// Fits reports whether the early child can run a command started with
// attr: its prelude is the one attr asks for, and attr needs no terminal.
func (e *Early) Fits(attr *Attr) bool {
	c := &e.e.c
	return attr.Setpgid && !attr.Foreground && uintptr(attr.Pdeathsig) == c.pdeathsig && attr.NoNewPrivs &&
		attr.DropCaps == c.dropCaps && attr.Hostname != ""
}

// Arm hands the early child, before its command, the hostname and the
// filters of attr (Filters, HostFallback, Hostname, SendListener; the rest
// of attr is not read): it sets the hostname and installs the filters —
// the longest of its steps — while the caller prepares the rest of the
// command. The child then goes on in the parent's descriptor table: the
// first filter's listener is created there (Listener), and the command's
// descriptors must be its 0, 1 and 2 as they are, which it only makes
// inheritable (Go checks). No syscall the child makes after the filters
// may be one that a filter denies or notifies: the caller arms only with
// sandlock's own filters, which allow every one of them.
func (e *Early) Arm(attr *Attr) error {
	a := &e.e.arm
	if a.wanted {
		return errors.New("spawn: early child armed twice")
	}
	if attr.Hostname == "" {
		return errors.New("spawn: an early child is armed with a hostname")
	}
	if err := a.set(attr); err != nil {
		return err
	}
	a.listen = attr.SendListener
	e.keep = append(append(e.keep, attr.Filters...), attr.HostFallback)
	a.wanted = true
	if atomic.SwapUint32(&e.e.state, earlyArm) == earlySleeping {
		futex(&e.e.state, futexWake, 1)
	}
	return nil
}

// Armed reports whether Arm was called.
func (e *Early) Armed() bool { return e.e.arm.wanted }

// Listener returns the listener of an armed child's first filter, a
// descriptor of the caller's, once Wait has returned without error; -1
// when there is none.
func (e *Early) Listener() int { return int(e.e.arm.listener) }

// Go hands the early child its command, prepared with an Attr that Fits,
// and returns the child's pid. Wait says whether the exec succeeded. An
// armed child takes the filters it was armed with: ch's must be the same,
// and its descriptors 0, 1 and 2 as they are.
func (e *Early) Go(ch *Child) (int, error) {
	n := ch.c
	if a := &e.e.arm; a.wanted {
		same := n.nfilters == a.nfilters && n.nfds == 3
		for i := 0; same && i < n.nfilters; i++ {
			same = n.filters[i] == a.filters[i]
		}
		for i := 0; same && i < n.nfds; i++ {
			same = n.fds[i] == i
		}
		if !same {
			return 0, errors.New("spawn: the command differs from what the early child was armed with")
		}
		n.armed = true
	}
	n.cleared, n.oldMask = true, e.e.c.oldMask
	if n.cpus == nil && e.e.cpus.Count() > 0 {
		n.cpus = &e.e.cpus // undoes awayFromCaller's
	}
	// Until the child says otherwise: were it killed before its exec,
	// Wait must not take it for the command.
	n.step, n.err = stepLost, unix.ECHILD
	e.e.next = n
	if atomic.SwapUint32(&e.e.state, earlyGo) == earlySleeping {
		futex(&e.e.state, futexWake, 1)
	}
	return e.pid, nil
}

// Wait waits until the child has exec'd its command or failed, and returns
// as Child.Start does.
func (e *Early) Wait() (pid, pidfd int, err error) {
	for {
		v := atomic.LoadUint32(&e.e.tid)
		if v == 0 {
			break
		}
		futex(&e.e.tid, futexWait, v)
	}
	e.release()
	n := e.e.next
	n.pidfd = e.e.c.pidfd
	pid, pidfd, err = n.result(e.pid)
	if err != nil {
		e.closeListener()
	}
	return pid, pidfd, err
}

// closeListener closes the listener an armed child made in the caller's
// descriptor table, once the child is gone.
func (e *Early) closeListener() {
	if fd := e.e.arm.listener; fd >= 0 {
		unix.Close(int(fd))
		e.e.arm.listener = -1
	}
}

// Abort ends the early child and reaps it.
func (e *Early) Abort() {
	if atomic.SwapUint32(&e.e.state, earlyAbort) == earlySleeping {
		futex(&e.e.state, futexWake, 1)
	}
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(e.pid, &ws, 0, nil); err != unix.EINTR {
			break
		}
	}
	e.release()
	e.closeListener()
	if e.e.c.pidfd >= 0 {
		unix.Close(int(e.e.c.pidfd))
	}
}

// awayFromCaller keeps the early child off the CPU the caller runs on, and
// stores the caller's mask in cpus (left empty when it does nothing). The
// scheduler often queues a new task on its parent's CPU even when the other
// is idle; there it would wait for the parent, busy initialising, to sleep
// — a third of a millisecond here — instead of taking its steps beside it.
// The child takes back the caller's mask before its exec.
func awayFromCaller(pid int, cpus *unix.CPUSet) {
	var mask unix.CPUSet
	if unix.SchedGetaffinity(0, &mask) != nil || mask.Count() < 2 {
		return
	}
	var cpu, node uint32
	if _, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), uintptr(unsafe.Pointer(&node)), 0); e != 0 {
		return
	}
	away := mask
	away.Clear(int(cpu))
	if unix.SchedSetaffinity(pid, &away) == nil {
		*cpus = mask
	}
}

// release frees the child's stack once it no longer runs on it.
func (e *Early) release() {
	if !e.done {
		e.done = true
		releaseStack(e.stack, e.static)
	}
}

// releaseStack frees an early child's stack, once it no longer runs on it.
func releaseStack(stack []byte, static bool) {
	if static {
		earlyStackUsed.Store(false)
	} else {
		unix.Munmap(stack)
	}
}

// futex is futex(2) on a word shared with an early child (not
// FUTEX_PRIVATE: the kernel's CLONE_CHILD_CLEARTID wake-up is not).
func futex(addr *uint32, op int, val uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), uintptr(op), uintptr(val), 0, 0, 0)
}

// earlyMainPC is the address of earlyMain's code (the ABIInternal entry,
// which a func value's first word holds).
func earlyMainPC() uintptr {
	f := earlyMain
	return **(**uintptr)(unsafe.Pointer(&f))
}

// earlyMain is the early child: its prelude, the wait for its command, the
// rest of its steps and the exec. It starts on its own stack (rawCloneEarly)
// and never returns.
//
//go:nosplit
//go:norace
func earlyMain(e *earlyChild) {
	c := &e.c
	step, err := childPrelude(c)
	armed := false
	for i := 0; ; i++ {
		s := loadUint32(&e.state)
		if s == earlyGo {
			break
		}
		if s == earlyAbort {
			earlyExit()
		}
		if s == earlyArm && !armed {
			armed = true
			if err == 0 {
				earlyArmed(e)
			}
			continue
		}
		if i < earlySpins {
			syscall.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		} else if (s == earlyReady || s == earlyArm) && casUint32(&e.state, s, earlySleeping) || s == earlySleeping {
			syscall.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&e.state)), futexWait, earlySleeping, 0, 0, 0)
		}
	}
	if e.arm.wanted && !armed && err == 0 {
		// Handed its command before it saw the filters: installed now.
		armed = true
		earlyArmed(e)
	}
	n := e.next
	// The rest of the command's steps (childConfine) go on from the
	// prelude's outcome.
	n.hostNS, n.hostStep, n.hostErr = c.hostNS, c.hostStep, c.hostErr
	switch {
	case err != 0:
	case armed:
		// Its filters are in place; its descriptor table is still the
		// parent's, which the exec copies (Go checked that its 0, 1 and
		// 2 are the command's).
		step, err = e.arm.step, e.arm.err
	default:
		// From here on the child's descriptors are its own.
		if _, _, err = syscall.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_FILES, 0, 0); err != 0 {
			step = stepUnshareFiles
		}
	}
	if err == 0 {
		step, err = childConfine(n)
	}
	if err == 0 {
		n.step = stepNone // read by the parent once the exec is done
		_, _, err = syscall.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(n.path)), uintptr(unsafe.Pointer(n.argv)), uintptr(unsafe.Pointer(n.envv)))
		step = stepExec
	}
	n.err, n.step = err, step
	earlyExit()
}

// earlyArmed takes an armed early child's steps: the hostname, then the
// filters, the first with a listener (see Early.Arm). Its outcome goes to
// e.arm.step and e.arm.err; a failed sethostname leaves the hostname to the
// supervisor (the fallback filter), as childHostname's failures do.
//
//go:nosplit
//go:norace
func earlyArmed(e *earlyChild) {
	c, a := &e.c, &e.arm
	if c.hostNS {
		if er := a.sethostname(); er != 0 {
			c.hostNS = c.hostFailed(4, er)
		}
	}
	fd, er := a.install(c.hostNS, a.listen)
	if er == 0 {
		er = a.installRest()
	}
	if er != 0 {
		a.step, a.err = stepSeccomp, er
		return
	}
	if a.listen {
		a.listener = int32(fd)
	}
}

// earlyExit ends an early child.
//
//go:nosplit
//go:norace
func earlyExit() {
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 253, 0, 0)
	}
}

// futex(2) operations.
const (
	futexWait = 0
	futexWake = 1
)

// EarlyPid returns the pid of the early child nobody has taken yet, 0 if
// none.
func EarlyPid() int {
	earlyMu.Lock()
	defer earlyMu.Unlock()
	if earlyOne == nil {
		return 0
	}
	return earlyOne.pid
}
