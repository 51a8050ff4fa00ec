// Package sandbox runs a command under a policy.Policy: Landlock, the
// seccomp filter and, unless the policy says otherwise, the supervisor that
// enforces process and memory limits. It is the public Go API that
// cmd/sandlock is a thin layer over.
//
// How the command starts. A thread is confined — capabilities dropped,
// no_new_privs, the filter with its user-notification listener, on that
// thread alone — and the command starts from it, inheriting all of that
// before its first instruction, and entering the Landlock domain between
// fork and exec (so that sandlock itself is never in it); the supervisor stays
// unconfined in sandlock's process. Which thread depends on who calls:
//
//   - sandlock's CLI confines a thread of its own, the forker, and forks the
//     command from it (Options.InProcess): one Go runtime start per launch.
//   - A library user's program gets a helper: its own binary re-executed
//     (entered through this package's init), which confines its main thread
//     and execs the command in place. That costs a second runtime start, but
//     a host program's threads never wait on the supervisor, which a busy
//     host could otherwise deadlock (see helper.go).
package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sandlock/sandlock/bpfprog"
	"github.com/sandlock/sandlock/internal/confine"
	"github.com/sandlock/sandlock/internal/spawn"
	"github.com/sandlock/sandlock/internal/sys"
	"github.com/sandlock/sandlock/policy"
	"github.com/sandlock/sandlock/supervisor"
	"golang.org/x/sys/unix"
)

// Command is what runs inside the sandbox.
type Command struct {
	// Path is the program; without a '/' it is looked up in the PATH of
	// the sandbox's environment.
	Path string
	// Args is argv, Args[0] included; empty means []string{Path}.
	Args []string
	// Stdin, Stdout and Stderr are the command's descriptors 0, 1 and 2;
	// nil connects /dev/null.
	Stdin, Stdout, Stderr *os.File
}

// Options are run-time choices that are not part of the policy.
type Options struct {
	// Stats collects supervisor statistics (Result.Stats).
	Stats bool
	// UseRing makes the supervisor poll the listener through io_uring
	// rather than block in NOTIF_RECV (see README, Performance).
	UseRing bool
	// Workers is the number of receiving goroutines; 0 picks 1.
	Workers int
	// Events receives messages meant for the user (a memory kill); nil
	// drops them. It may be called from any goroutine.
	Events func(Event)
	// ExitAfterWait says the caller exits as soon as Wait returns (as the
	// CLI does): the supervisor's goroutines and descriptors are then left
	// to the process exit instead of being released in the background.
	// Every sandboxed process is still killed and reaped by Wait.
	ExitAfterWait bool
	// InProcess forks the command from a thread of this process instead of
	// a helper process: it saves a Go runtime start at launch. That thread,
	// the forker, carries the filter, forks, then parks for good (the
	// command's parent-death signal follows it); it allocates nothing once
	// confined. The collector must be off (debug.SetGCPercent(-1)) from
	// before any cycle could begin until Start returns: the forker's fork
	// waits on the supervisor inside a raw syscall, which a stop-the-world
	// would wait for in turn. It implies ExitAfterWait. sandlock's CLI uses
	// it; a library user should not (see helper.go).
	InProcess bool
	// HostnameBySupervisor keeps the hostname's virtualization in the
	// supervisor (uname and every open notified) where the forking thread
	// could instead enter namespaces of its own (as root; see
	// confine.VirtualHostname). For tests of that path.
	HostnameBySupervisor bool
}

// Event is something the user should hear about while the sandbox runs.
type Event struct {
	// MemoryKill is set when a process was killed for exceeding the
	// memory limit.
	MemoryKill *MemoryKill
}

// MemoryKill describes a process killed by the memory limit.
type MemoryKill struct {
	Pid   int
	Comm  string
	Limit int64
}

func (m MemoryKill) String() string {
	return fmt.Sprintf("memory limit %s exceeded by pid %d (%s)", policy.FormatSize(m.Limit), m.Pid, m.Comm)
}

// Result is how a sandbox ended.
type Result struct {
	// ExitCode is the command's status as a shell reports it: its exit
	// code, or 128+N after death by signal N.
	ExitCode int
	// Signal is the signal that killed the command, 0 if it exited.
	Signal syscall.Signal
	// TimedOut is set when the policy's timeout killed the sandbox.
	TimedOut bool
	// Stats are the supervisor's statistics (Options.Stats).
	Stats *supervisor.Report
}

// ExecError reports that the command could not be executed inside the
// sandbox. Err is the errno of execve: ENOENT means not found (a shell's
// 127), anything else not executable (126).
type ExecError struct {
	Path string
	Err  error
}

func (e *ExecError) Error() string {
	if errors.Is(e.Err, unix.ENOENT) {
		return e.Path + ": command not found"
	}
	return fmt.Sprintf("%s: cannot execute: %v", e.Path, e.Err)
}

func (e *ExecError) Unwrap() error { return e.Err }

// ExitCode returns the status a shell gives this failure: 127 or 126.
func (e *ExecError) ExitCode() int {
	if errors.Is(e.Err, unix.ENOENT) {
		return 127
	}
	return 126
}

// Sandbox is a running sandbox.
type Sandbox struct {
	policy *policy.Policy
	opts   Options
	name   string
	pid    int
	pidfd  int
	sup    *supervisor.Supervisor
	dog    atomic.Pointer[watchdog]

	stopOnce    sync.Once
	cleaned     chan struct{} // closed once cleanup has released everything
	waited      chan struct{} // closed once the command has been waited for
	cleanupOnce sync.Once
	timedOut    atomic.Bool
	timer       *time.Timer
	waitOnce    sync.Once
	result      *Result
	waitErr     error
}

var seq atomic.Int64

// spawnLock serialises the part of Start that changes process-wide state
// (descriptors marked close-on-exec).
var spawnLock sync.Mutex

// filterOptions gives the filter p asks for.
func filterOptions(p *policy.Policy) bpfprog.Options {
	bo := bpfprog.Options{
		ExtraDeny:  p.ExtraDenySyscalls,
		ExtraAllow: p.ExtraAllowSyscalls,
	}
	if !p.NoSupervisor {
		bo.Notify = bpfprog.NotifyProcesses | bpfprog.NotifySignals | bpfprog.NotifyHostname
		if p.MaxMemory > 0 {
			bo.Notify |= bpfprog.NotifyMemory
		}
	}
	return bo
}

// namespaceFilters returns the filters for p when the hostname is
// virtualized by namespaces (virtualHostname): without the notification of
// uname and of every open. Nil when p's filter notifies neither.
func namespaceFilters(arch *bpfprog.Arch, p *policy.Policy) ([][]unix.SockFilter, error) {
	o := filterOptions(p)
	if o.Notify&bpfprog.NotifyHostname == 0 {
		return nil, nil
	}
	o.Notify &^= bpfprog.NotifyHostname
	return bpfprog.Filters(arch, o)
}

// virtualHostname gives the calling thread, locked for good, namespaces in
// which uname and /etc/hostname show name (confine.VirtualHostname), and
// lets the file through the Landlock ruleset rulesetFD (-1: none). False
// when the kernel or sandlock's privileges refuse: the supervisor then
// virtualizes the hostname, with the filter that notifies uname and open.
func virtualHostname(name string, rulesetFD int) bool {
	fd, err := confine.VirtualHostname(name)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return rulesetFD < 0 || confine.AllowReadFile(rulesetFD, fd) == nil
}

// buildRuleset builds p's Landlock ruleset.
func buildRuleset(p *policy.Policy) (*confine.Ruleset, error) {
	return confine.BuildRuleset(confine.LandlockSpec{
		FS:            confine.FSRules{Read: p.FSRead, Write: p.FSWrite},
		Disable:       protections(p.Disable),
		AllowDegraded: protections(p.AllowDegraded),
	})
}

// Start validates p and starts cmd confined by it. On error nothing is left
// running. A *policy.Error means bad input, an *ExecError that the command
// could not be executed.
func Start(p *policy.Policy, cmd Command, opts *Options) (*Sandbox, error) {
	if opts == nil {
		opts = &Options{}
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	arch, err := bpfprog.Native()
	if err != nil {
		return nil, err
	}
	env := p.Env
	if env == nil {
		env = os.Environ()
	}
	if cmd.Path == "" {
		return nil, &policy.Error{Flag: "command", Err: errors.New("no command given")}
	}
	path, err := lookPath(cmd.Path, env, p.Cwd)
	if err != nil {
		return nil, &ExecError{Path: cmd.Path, Err: err}
	}
	argv := cmd.Args
	if len(argv) == 0 {
		argv = []string{cmd.Path}
	}
	sb := &Sandbox{policy: p, opts: *opts, pidfd: -1, cleaned: make(chan struct{}), waited: make(chan struct{})}
	sb.name = p.Name
	if sb.name == "" {
		sb.name = fmt.Sprintf("sandbox-%d-%d", os.Getpid(), seq.Add(1))
	}
	// Built here in both designs: its errors (a path that does not exist,
	// a protection the kernel lacks) are the user's and typed.
	rs, err := buildRuleset(p)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	files, closeFiles, err := stdio(cmd)
	if err != nil {
		return nil, err
	}
	defer closeFiles()
	if !p.NoSupervisor {
		// Orphans of sandboxed processes come back to sandlock, so that
		// none escapes the process count or the final kill.
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}

	var pid, pidfd int
	if opts.InProcess {
		sb.opts.ExitAfterWait = true
		pid, pidfd, err = sb.startConfined(arch, rs, path, argv, env, files)
	} else {
		if sb.sup, err = sb.newSupervisor(arch); err == nil {
			pid, pidfd, err = sb.helperStart(&helperSpec{Policy: p, Path: path, Argv: argv, Env: env,
				Name: sb.name, HostnameBySupervisor: sb.opts.HostnameBySupervisor}, files)
			if err != nil && sb.sup != nil {
				sb.sup.Stop()
			}
		}
	}
	if err != nil {
		var ee *ExecError
		if errors.As(err, &ee) {
			ee.Path = cmd.Path
		}
		return nil, err
	}
	sb.pid, sb.pidfd = pid, pidfd
	if p.Timeout > 0 {
		sb.timer = time.AfterFunc(p.Timeout, func() {
			sb.timedOut.Store(true)
			sb.Kill()
		})
	}
	if p.CPUPercent > 0 && p.CPUPercent < 100 {
		go sb.throttle(p.CPUPercent)
	}
	return sb, nil
}

// startConfined confines the calling thread and forks the command from it
// (Options.InProcess), starting the supervisor on the thread's listener.
func (sb *Sandbox) startConfined(arch *bpfprog.Arch, rs *confine.Ruleset, path string, argv, env []string, files []uintptr) (pid, pidfd int, err error) {
	p := sb.policy
	filters, err := bpfprog.Filters(arch, filterOptions(p))
	if err != nil {
		return 0, -1, err
	}
	var nsFilters [][]unix.SockFilter
	if !sb.opts.HostnameBySupervisor {
		if nsFilters, err = namespaceFilters(arch, p); err != nil {
			return 0, -1, err
		}
	}
	sup, err := sb.newSupervisor(arch)
	if err != nil {
		return 0, -1, err
	}
	// Before the fork: the supervisor's first-fork event (the watchdog)
	// reaches the sandbox through it.
	sb.sup = sup
	spawnLock.Lock()
	defer spawnLock.Unlock()
	// Descriptors sandlock inherited must not reach the command: mark them
	// all close-on-exec (sandlock's own are already).
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	attr := &spawn.Attr{Dir: p.Cwd, Pdeathsig: syscall.SIGKILL, LandlockFD: -1}
	for _, f := range files {
		attr.Files = append(attr.Files, int(f))
	}
	// The command leads a process group of its own, in sandlock's session
	// (as the Rust sandlock does): signals are forwarded to that group. The
	// child makes no notified syscall before its exec, so its parent-death
	// signal is set before anything can wait on the supervisor.
	attr.Setpgid = true
	if p.Interactive && isTerminal(files[0]) {
		attr.Foreground = true
		attr.Ctty = 0
	}
	// The child enters the Landlock domain by itself, after the fork:
	// no thread of sandlock is in it (see package spawn).
	if rs != nil && rs.FD >= 0 {
		attr.LandlockFD, attr.LandlockFlags = rs.FD, rs.Flags
	}
	child, err := spawn.Prepare(path, argv, env, attr)
	if err != nil {
		if sup != nil {
			sup.Stop()
		}
		return 0, -1, err
	}
	// Defence in depth: were sandlock ever in the command's Landlock
	// domain, the command could ptrace it (open /proc/PID/mem, environ,
	// fd/, cwd). Non-dumpable, sandlock can be inspected only with
	// CAP_SYS_PTRACE, which the command never has. Its exec makes the
	// command dumpable again.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		if sup != nil {
			sup.Stop()
		}
		return 0, -1, fmt.Errorf("prctl(PR_SET_DUMPABLE): %w", err)
	}
	cpus := cpuSet(p)
	if runtime.GOMAXPROCS(0) < 2 {
		// A worker must be able to run while the forker, blocked in a
		// notified raw syscall, holds a P.
		runtime.GOMAXPROCS(2)
	}
	releaseGC := holdGC()
	defer releaseGC()

	// The forker: a thread of its own, confined with the filter, which
	// forks the command and then waits for good (the command's parent-death
	// signal follows the thread that forked it). Every syscall it makes
	// once confined may wait on the supervisor, so from there on it must
	// neither allocate nor enter the Go scheduler: a heap or stack growth is
	// an mmap (notified under --max-memory) made holding the runtime's heap
	// lock, which a worker may need; readying a goroutine or parking may
	// create a thread, which allocates. So everything is prepared here, its
	// stack is grown beforehand, it attaches the supervisor with an atomic
	// store and a raw futex wake, and it reports back through an eventfd
	// that this goroutine reads through the netpoller.
	r := &forkThread{spec: confine.ThreadSpec{Filters: filters, Listener: sup != nil}, child: child, cpus: cpus, sup: sup,
		attach: sup != nil && !sb.opts.UseRing, one: 1, hostname: sb.name, nsFilters: nsFilters, rulesetFD: -1}
	if rs != nil {
		r.rulesetFD = rs.FD
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		if sup != nil {
			sup.Stop()
		}
		return 0, -1, fmt.Errorf("eventfd: %w", err)
	}
	r.efd = efd
	events := os.NewFile(uintptr(efd), "forker")
	defer events.Close()
	r.onListener = r.listenerReady
	go r.run()
	var buf [8]byte
	for started := false; r.phase.Load() != forkerDone; {
		if _, err := events.Read(buf[:]); err != nil {
			return 0, -1, fmt.Errorf("forker: %w", err)
		}
		if !started && r.phase.Load() >= forkerListener && !r.attach && sup != nil {
			started = true
			if err := sup.Start(int(r.listener), r.tid); err != nil {
				// Closing the listener makes the fork fail (ENOSYS).
				sup.Stop()
				for r.phase.Load() != forkerDone {
					events.Read(buf[:])
				}
				return 0, -1, err
			}
		}
	}
	if r.attach && r.err == nil {
		sup.StartBackground()
	}
	if r.err != nil {
		if sup != nil {
			sup.Stop()
		}
		if e, ok := r.err.(syscall.Errno); ok {
			return 0, -1, &ExecError{Err: e}
		}
		return 0, -1, r.err
	}
	pid = r.pid
	if p.MaxOpenFiles > 0 {
		// Go cannot run code between fork and exec, so the limit is set
		// the moment the exec has happened (ForkExec returns then), a few
		// microseconds into the dynamic loader; descendants inherit it.
		// Soft and hard alike, so it cannot be raised again.
		lim := unix.Rlimit{Cur: uint64(p.MaxOpenFiles), Max: uint64(p.MaxOpenFiles)}
		unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil)
	}
	if sup != nil {
		sup.RegisterRoot(pid)
	}
	return pid, r.pidfd, nil
}

// forkThread is the state of a forker thread (see startConfined), shared with
// the goroutine that started it. The forker writes its fields, then phase,
// then signals the eventfd.
type forkThread struct {
	spec       confine.ThreadSpec
	child      *spawn.Child
	cpus       *unix.CPUSet
	sup        *supervisor.Supervisor
	attach     bool // attach the supervisor itself (not in ring mode)
	onListener func(int) error
	efd        int
	one        uint64 // the eventfd increment
	// hostname, nsFilters: the forker first tries to give the command
	// the hostname through namespaces (virtualHostname); it installs
	// nsFilters then, which leave uname and open to the kernel.
	hostname  string
	nsFilters [][]unix.SockFilter
	rulesetFD int

	listener, tid int32
	pid, pidfd    int
	err           error
	phase         atomic.Int32
	park          atomic.Uint32 // a futex word nobody wakes
}

// Forker phases.
const (
	forkerListener = 1 // the listener is known (listener, tid)
	forkerDone     = 2 // the fork is done (pid, pidfd, err)
)

// signal wakes the goroutine waiting on the eventfd, with a raw write.
func (f *forkThread) signal() {
	unix.RawSyscall(unix.SYS_WRITE, uintptr(f.efd), uintptr(unsafePointer(&f.one)), 8)
}

// listenerReady is the forker's onListener.
func (f *forkThread) listenerReady(l int) error {
	if l < 0 {
		return nil
	}
	f.listener, f.tid = int32(l), int32(unix.Gettid())
	if f.attach {
		// Right here: the workers start receiving while this thread goes
		// on to the fork.
		f.sup.Attach(l, f.tid)
	}
	f.phase.Store(forkerListener)
	if !f.attach {
		f.signal() // ring mode: Start must run elsewhere first
	}
	return nil
}

// run is the forker thread.
func (f *forkThread) run() {
	runtime.LockOSThread() // for good
	growStack()
	if f.cpus != nil {
		// The command inherits the forker's CPU mask.
		if err := unix.SchedSetaffinity(0, f.cpus); err != nil {
			f.err = fmt.Errorf("sched_setaffinity: %w", err)
		}
	}
	if f.err == nil && f.nsFilters != nil && virtualHostname(f.hostname, f.rulesetFD) {
		f.spec.Filters = f.nsFilters
	}
	if f.err == nil {
		if _, f.err = confine.ConfineThread(f.spec, f.onListener); f.err == nil {
			f.pid, f.pidfd, f.err = f.child.Start()
		}
	}
	f.phase.Store(forkerDone)
	f.signal()
	// Wait for good, in a syscall (the runtime takes the P back), with
	// every signal blocked so that the futex never returns.
	all := ^uint64(0)
	unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_BLOCK, uintptr(unsafePointer(&all)), 0, 8, 0, 0)
	for {
		sys.FutexWait(&f.park, 0)
	}
}

// throttlePeriod is the period of --cpu's duty cycle.
const throttlePeriod = 100 * time.Millisecond

// throttle holds the sandbox to pct% of the time without cgroups: every
// period it lets it run pct% of the period and stops it (SIGSTOP to the
// command's process group and every registered process) for the rest.
func (sb *Sandbox) throttle(pct int) {
	run := throttlePeriod * time.Duration(pct) / 100
	for {
		select {
		case <-sb.waited:
			return
		case <-time.After(run):
		}
		sb.sendAll(unix.SIGSTOP)
		select {
		case <-sb.waited:
			sb.sendAll(unix.SIGCONT)
			return
		case <-time.After(throttlePeriod - run):
		}
		sb.sendAll(unix.SIGCONT)
	}
}

// sendAll sends sig to the command's process group and every registered
// process.
func (sb *Sandbox) sendAll(sig unix.Signal) {
	unix.Kill(-sb.pid, sig)
	if sb.sup != nil {
		sb.sup.Signal(sig)
	}
}

// holdGC keeps the garbage collector off for the confined section of Start
// and returns what undoes it.
//
// From the moment the spawn thread installs its filter until the command has
// been exec'd, that thread (and the forked child before its exec) can wait
// for a supervisor worker inside a raw syscall: the fork's clone is
// notified, the child resets its SIGCHLD handler (a notified rt_sigaction),
// and under a memory limit every heap growth is a notified mmap. The Go
// runtime counts a thread in a raw syscall as running, so a stop-the-world
// beginning meanwhile waits for it, while the worker that must answer waits
// for the world to restart: a deadlock. A collection is the only
// stop-the-world that starts on its own, so none may begin or be finishing
// during the section. SetGCPercent(-1) stops new cycles and waits for a
// cycle's mark phase, but a cycle's last step (flushing every P's caches)
// runs after that; ReadMemStats stops the world itself, which it can only
// do once that step is over. When the collector is already off (sandlock
// turns it off in its init, before any cycle can have begun), neither is
// needed. A program embedding sandbox must not make other stop-the-world
// calls (runtime.ReadMemStats, runtime.GOMAXPROCS, runtime.GC) or change the
// GC percentage while a Start is running.
func holdGC() (release func()) {
	old := debug.SetGCPercent(-1)
	if old == -1 {
		return func() {}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return func() { debug.SetGCPercent(old) }
}

// newSupervisor prepares the supervisor; nil when the policy has none.
func (sb *Sandbox) newSupervisor(arch *bpfprog.Arch) (*supervisor.Supervisor, error) {
	p := sb.policy
	if p.NoSupervisor {
		return nil, nil
	}
	return supervisor.New(supervisor.Config{
		Arch:         arch,
		MaxProcesses: int64(p.EffectiveMaxProcesses()),
		MaxMemory:    p.MaxMemory,
		Hostname:     sb.name,
		Workers:      sb.opts.Workers,
		UseRing:      sb.opts.UseRing,
		Stats:        sb.opts.Stats,
		Events: supervisor.Events{
			MemoryKill: sb.memoryKill,
			FirstFork:  sb.startWatchdog,
		},
	})
}

// Pid returns the pid of the command.
func (sb *Sandbox) Pid() int { return sb.pid }

// Name returns the sandbox's name (its hostname inside).
func (sb *Sandbox) Name() string { return sb.name }

// Signal sends sig to the command's process group.
func (sb *Sandbox) Signal(sig syscall.Signal) error {
	return unix.Kill(-sb.pid, sig)
}

// Kill kills every process of the sandbox.
func (sb *Sandbox) Kill() {
	unix.Kill(-sb.pid, unix.SIGKILL)
	if sb.pidfd >= 0 {
		unix.PidfdSendSignal(sb.pidfd, unix.SIGKILL, nil, 0)
	}
	if sb.sup != nil {
		sb.sup.Signal(unix.SIGKILL)
	}
}

// Wait waits for the command to exit and makes sure no process of the
// sandbox is left: every remaining one is killed and reaped before Wait
// returns. The supervisor's threads and descriptors are released in the
// background; Close waits for that.
func (sb *Sandbox) Wait() (*Result, error) {
	sb.waitOnce.Do(func() {
		sb.result, sb.waitErr = sb.wait()
		if !sb.opts.ExitAfterWait {
			go sb.cleanup()
		}
	})
	return sb.result, sb.waitErr
}

// Close waits for the command (see Wait) and for every resource of the
// sandbox — supervisor goroutines and threads, descriptors, the watchdog —
// to be released.
func (sb *Sandbox) Close() error {
	_, err := sb.Wait()
	if sb.opts.ExitAfterWait {
		sb.cleanupOnce.Do(sb.cleanup)
	}
	<-sb.cleaned
	return err
}

func (sb *Sandbox) wait() (*Result, error) {
	var info unix.Siginfo
	var err error
	for {
		err = unix.Waitid(unix.P_PIDFD, sb.pidfd, &info, unix.WEXITED, nil)
		if err != unix.EINTR {
			break
		}
	}
	if sb.timer != nil {
		sb.timer.Stop()
	}
	close(sb.waited)
	res := &Result{TimedOut: sb.timedOut.Load()}
	if err == nil {
		status, code := siginfoStatus(&info)
		if code == cldExited {
			res.ExitCode = status
		} else {
			res.Signal = syscall.Signal(status)
			res.ExitCode = 128 + status
		}
	}
	if sb.sup != nil {
		sb.sup.ReleaseRoot()
	}
	sb.reapAll()
	if d := sb.dog.Load(); d != nil {
		d.clean() // nothing is left for it to kill
	}
	if sb.sup != nil && sb.opts.Stats {
		sb.sup.Settle(100 * time.Millisecond)
		r := sb.sup.Report()
		res.Stats = &r
	}
	if res.TimedOut {
		res.ExitCode = 124
	}
	if err != nil {
		return res, fmt.Errorf("wait for the command: %w", err)
	}
	return res, nil
}

// cleanup releases what the sandbox held once its processes are gone.
func (sb *Sandbox) cleanup() {
	sb.teardown()
	close(sb.cleaned)
}

// teardown kills and reaps whatever remains, stops the supervisor and ends
// the spawn thread.
func (sb *Sandbox) teardown() {
	sb.reapAll()
	sb.stopOnce.Do(func() {
		if sb.sup != nil {
			sb.sup.Stop()
		}
	})
	if d := sb.dog.Swap(nil); d != nil {
		d.release()
	}
	if sb.pidfd >= 0 {
		unix.Close(sb.pidfd)
		sb.pidfd = -1
	}
}

// reapAll kills every remaining process of the sandbox and reaps it. The
// command has exited; its descendants are killed through their process
// groups and pidfds, and as they die their children become sandlock's
// (it is their subreaper), which are killed and reaped in turn.
func (sb *Sandbox) reapAll() {
	if sb.pid > 0 && sb.sup != nil && !sb.sup.Forked() {
		// The first process never created another, and it is reaped:
		// nothing is left (threads die with their process).
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for round := 0; ; round++ {
		if sb.pid > 0 {
			unix.Kill(-sb.pid, unix.SIGKILL)
		}
		if sb.sup != nil {
			sb.sup.Signal(unix.SIGKILL)
		}
		if sb.sup != nil {
			sb.sup.Reap()
		}
		if sb.sup != nil {
			sb.sup.Reap()
		}
		// Orphans that became sandlock's children: only this sandbox's
		// (a program may run several at once). The supervisor knows them
		// by pidfd; without one, the command's process group tells.
		var kids []int
		for _, k := range sb.children() {
			if sb.sup != nil {
				if sb.sup.ReapOrphan(k) {
					kids = append(kids, k)
				}
				continue
			}
			if pgid, _ := unix.Getpgid(k); sb.pid > 0 && pgid == sb.pid {
				unix.Kill(k, unix.SIGKILL)
				var ws unix.WaitStatus
				unix.Wait4(k, &ws, unix.WALL, nil)
				kids = append(kids, k)
			}
		}
		live := 0
		if sb.sup != nil {
			live, _ = sb.sup.Live()
		}
		if len(kids) == 0 && live == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(time.Duration(min(round+1, 10)) * time.Millisecond)
	}
}

// children lists sandlock's sandboxed children (not the watchdog, not a
// library user's own children).
func (sb *Sandbox) children() []int {
	var out []int
	self := os.Getpid()
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", self))
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", self, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			var pid int
			fmt.Sscan(f, &pid)
			if d := sb.dog.Load(); pid <= 0 || (d != nil && pid == d.pid) || pid == sb.pid {
				continue
			}
			if sandboxed(pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// sandboxed reports whether pid runs with no_new_privs under a seccomp
// filter, as every sandboxed process does.
func sandboxed(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	s := string(b)
	return strings.Contains(s, "\nNoNewPrivs:\t1") && strings.Contains(s, "\nSeccomp:\t2")
}

func (sb *Sandbox) memoryKill(pid int, comm string, limit int64) {
	if sb.opts.Events != nil {
		sb.opts.Events(Event{MemoryKill: &MemoryKill{Pid: pid, Comm: comm, Limit: limit}})
	}
}

// startWatchdog runs before the sandbox's first process creates a second:
// from then on the parent-death signal is not enough. The watchdog gets the
// supervisor's mirror of the live processes.
func (sb *Sandbox) startWatchdog() error {
	fd, err := sb.sup.Mirror()
	if err != nil {
		return err
	}
	d, err := startWatchdog(fd)
	if err != nil {
		return err
	}
	sb.dog.Store(d)
	return nil
}

// Run starts cmd under p and waits for it.
func Run(p *policy.Policy, cmd Command, opts *Options) (*Result, error) {
	sb, err := Start(p, cmd, opts)
	if err != nil {
		return nil, err
	}
	res, err := sb.Wait()
	sb.Close()
	return res, err
}

func protections(names []string) []confine.Protection {
	out := make([]confine.Protection, len(names))
	for i, n := range names {
		out[i] = confine.Protection(n)
	}
	return out
}

// lookPath finds file in the PATH of env, as execvp would.
func lookPath(file string, env []string, cwd string) (string, error) {
	if strings.Contains(file, "/") {
		if !filepath.IsAbs(file) && cwd != "" {
			return filepath.Join(cwd, file), nil
		}
		return file, nil
	}
	pathEnv := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	denied := false
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		f := filepath.Join(dir, file)
		st, err := os.Stat(f)
		if err != nil || st.IsDir() {
			continue
		}
		if st.Mode()&0o111 == 0 {
			denied = true
			continue
		}
		return f, nil
	}
	if denied {
		return "", unix.EACCES
	}
	return "", unix.ENOENT
}

// stdio opens the command's descriptors 0-2.
func stdio(cmd Command) ([]uintptr, func(), error) {
	var opened []*os.File
	closeAll := func() {
		for _, f := range opened {
			f.Close()
		}
	}
	fds := make([]uintptr, 3)
	for i, f := range []*os.File{cmd.Stdin, cmd.Stdout, cmd.Stderr} {
		if f == nil {
			flag := os.O_RDONLY
			if i > 0 {
				flag = os.O_WRONLY
			}
			n, err := os.OpenFile(os.DevNull, flag, 0)
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			opened = append(opened, n)
			f = n
		}
		fds[i] = f.Fd()
	}
	return fds, closeAll, nil
}

func isTerminal(fd uintptr) bool {
	_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
	return err == nil
}

// cpuSet returns the affinity mask for --cpu-cores/--num-cpus, nil for none.
func cpuSet(p *policy.Policy) *unix.CPUSet {
	if len(p.CPUCores) == 0 && p.NumCPUs == 0 {
		return nil
	}
	var set unix.CPUSet
	if len(p.CPUCores) > 0 {
		for _, c := range p.CPUCores {
			set.Set(c)
		}
	} else {
		var cur unix.CPUSet
		unix.SchedGetaffinity(0, &cur)
		n := 0
		for c := 0; c < 1024 && n < p.NumCPUs; c++ {
			if cur.IsSet(c) {
				set.Set(c)
				n++
			}
		}
	}
	return &set
}

// siginfoStatus extracts si_status and si_code from a waitid result.
func siginfoStatus(info *unix.Siginfo) (status int, code int32) {
	// struct siginfo for SIGCHLD: signo, errno, code, then pid, uid, status.
	b := (*[128]byte)(unsafePointer(info))
	code = int32(le32(b[8:]))
	status = int(int32(le32(b[24:])))
	return status, code
}
