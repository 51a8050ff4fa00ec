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

// States of an early child (earlyChild.state).
const (
	earlyReady    = iota // taking its first steps or waiting, spinning
	earlySleeping        // waiting on the futex
	earlyGo              // handed its command
	earlyAbort           // to exit
)

// earlyStack is the size of an early child's stack: its nosplit code needs
// less than a page.
const earlyStack = 64 << 10

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
}

// Early is an early child (see StartEarly).
type Early struct {
	e     *earlyChild
	stack []byte
	pid   int
	done  bool
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
	e := &earlyChild{tid: 1}
	c := &e.c
	c.setpgid, c.pdeathsig, c.hostWanted, c.dropCaps, c.nnp = true, uintptr(syscall.SIGKILL), true, sys.HasAnyCap(), true
	c.pidfd = -1
	c.ppid, _, _ = syscall.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
	stack, err := unix.Mmap(-1, 0, earlyStack, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_STACK)
	if err != nil {
		return fmt.Errorf("spawn: early child's stack: %w", err)
	}
	args := cloneArgs{flags: unix.CLONE_VM | unix.CLONE_FILES | unix.CLONE_PIDFD | unix.CLONE_CHILD_CLEARTID | cloneClearSighand,
		pidfd: uint64(uintptr(unsafe.Pointer(&c.pidfd))), childTID: uint64(uintptr(unsafe.Pointer(&e.tid))),
		exitSignal: uint64(unix.SIGCHLD), stack: uint64(uintptr(unsafe.Pointer(&stack[0]))), stackSize: earlyStack}
	all := ^uint64(0)
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&c.oldMask)), 8, 0, 0)
	pid, errno := rawCloneEarly(&args, unsafe.Sizeof(args), earlyMainPC(), e)
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&c.oldMask)), 0, 8, 0, 0)
	if errno != 0 {
		unix.Munmap(stack)
		return fmt.Errorf("spawn: early child: clone3: %w", errno)
	}
	awayFromCaller(int(pid), &e.cpus)
	earlyMu.Lock()
	old := earlyOne
	earlyOne = &Early{e: e, stack: stack, pid: int(pid)}
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

// Go hands the early child its command, prepared with an Attr that Fits,
// and returns the child's pid. Wait says whether the exec succeeded.
func (e *Early) Go(ch *Child) int {
	n := ch.c
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
	return e.pid
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
	return n.result(e.pid)
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
		unix.Munmap(e.stack)
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
	for i := 0; ; i++ {
		s := loadUint32(&e.state)
		if s == earlyGo {
			break
		}
		if s == earlyAbort {
			earlyExit()
		}
		if i < earlySpins {
			syscall.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		} else if casUint32(&e.state, earlyReady, earlySleeping) || s == earlySleeping {
			syscall.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&e.state)), futexWait, earlySleeping, 0, 0, 0)
		}
	}
	n := e.next
	// The rest of the command's steps (childConfine) go on from the
	// prelude's outcome.
	n.hostNS, n.hostStep, n.hostErr = c.hostNS, c.hostStep, c.hostErr
	if err == 0 {
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
