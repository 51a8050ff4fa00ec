// Package supervisor answers the seccomp user notifications of a sandbox.
//
// Workers block in SECCOMP_IOCTL_NOTIF_RECV on the listener (or, with
// Config.UseRing, one goroutine polls it through io_uring), look the syscall
// number up in a dispatch table, run its handler inline and reply. Nothing
// on that path takes a lock, allocates or makes a syscall it does not need:
// processes are found through a lock-free pid table, counted in sharded
// accounting.Limiters (one shard per worker), and their exits arrive in
// batches from pidwatch. A handler that may block first makes sure another
// worker is receiving, so one slow request never stalls other processes.
//
// The notified syscalls (see bpfprog.Notify) and what their handlers do:
//
//   - fork, vfork, clone (processes, not threads): reserve a process slot
//     (EAGAIN beyond the limit) and, unless the child shares the address
//     space, memory for its copy; the slot is held by a marker on the
//     forking thread until the child is found and registered with a pidfd.
//   - mmap, mprotect, pkey_mprotect, brk, mremap, shmget: charge memory that
//     becomes writable to the sandbox's ledger; the process that would exceed
//     the limit is killed.
//   - uname and the open calls: the sandbox's name is its hostname.
//   - rt_sigaction(SIGCHLD): the handler is made restartable, so a notified
//     fork is never failed with a spurious EINTR.
package supervisor

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sandlock/sandlock/accounting"
	"github.com/sandlock/sandlock/bpfprog"
	"github.com/sandlock/sandlock/internal/sys"
	"github.com/sandlock/sandlock/pidwatch"
	"github.com/sandlock/sandlock/ring"
	"golang.org/x/sys/unix"
)

// Events are the supervisor's calls back into its owner. Each may be nil.
// They run on a worker and must not block for long.
type Events struct {
	// MemoryKill reports a process killed for exceeding the memory limit.
	MemoryKill func(pid int, comm string, limit int64)
	// FirstFork runs once, before the sandbox's first process creates a
	// second one; an error makes that fork fail with EAGAIN.
	FirstFork func() error
	// RootExited reports that the sandbox's first process has exited.
	RootExited func()
}

// Config configures a Supervisor.
type Config struct {
	// Arch is the syscall ABI of the sandbox.
	Arch *bpfprog.Arch
	// MaxProcesses is the process limit; 0 is unlimited.
	MaxProcesses int64
	// MaxMemory is the memory limit in bytes; 0 is unlimited.
	MaxMemory int64
	// Hostname is what uname and /etc/hostname show inside; "" leaves them.
	Hostname string
	// Workers is the number of goroutines blocked in NOTIF_RECV (default 1);
	// more are started while handlers block.
	Workers int
	// UseRing polls the listener through the io_uring instead of blocking
	// in NOTIF_RECV.
	UseRing bool
	// Stats collects per-syscall counts and handler latencies.
	Stats bool
	// MemoryResync is how often the memory ledger is checked against /proc
	// (catching memory a process got without a syscall the filter sees, such
	// as a large .bss at execve); 0 picks 100ms. Only with MaxMemory.
	MemoryResync time.Duration
	// Events are the callbacks.
	Events Events
}

type handlerFn func(w *worker, p *proc)

// wakeSignal is the signal Stop sends a worker's thread to interrupt its
// NOTIF_RECV: a real-time signal the Go runtime catches and ignores (it is
// nobody's unless a program asks for it with os/signal), whose handler
// prepareWakeSignal makes non-restarting. A signal with SA_RESTART (every
// handler the runtime installs has it, SIGURG's included) leaves the
// worker in RECV: the kernel restarts the call.
const wakeSignal = unix.Signal(62)

var wakeOnce sync.Once

// prepareWakeSignal clears SA_RESTART from the runtime's handler of
// wakeSignal, once per process.
func prepareWakeSignal() {
	wakeOnce.Do(func() {
		var sa sys.Sigaction
		if sys.RtSigaction(int(wakeSignal), nil, &sa) != 0 || sa.Handler == 0 {
			return
		}
		sa.Flags &^= sys.SaRestart
		sys.RtSigaction(int(wakeSignal), &sa, nil)
	})
}

// maxWorkers bounds the receiving goroutines of one supervisor: as many
// handlers can be slow at once before the next notification waits.
const maxWorkers = 256

// testHook, when set (by tests only, before any supervisor starts), runs at
// the start of every handled notification with its syscall number.
var testHook func(nr int)

// Supervisor serves one sandbox's listener.
type Supervisor struct {
	cfg      Config
	selfPid  int32
	listener int
	handlers []handlerFn
	// forkKind and isMem classify the notified syscalls by number, so
	// that no handler compares names.
	forkKind []uint8
	isMem    []bool
	// nrOpen and nrOpenat2 are the numbers of open and openat2 (-1 where
	// the architecture lacks one), for the open handler.
	nrOpen, nrOpenat2 int

	pids  pidTable
	arena arena
	self  *proc
	root  atomic.Uint64

	procs *accounting.Limiter
	mem   *accounting.Limiter

	ringMu sync.Mutex
	ringOK atomic.Bool
	ring   *ring.Ring
	loop   *pidwatch.Loop
	// unarmed counts processes registered since the reaper last armed
	// their exit watches (deferred arming, see armPending).
	unarmed atomic.Int32
	reaper  *worker

	shards    int
	nworkers  atomic.Int32
	wmu       sync.Mutex // guards receivers (slow path: worker start and exit)
	receivers []*worker  // workers serving the listener, for Stop's wake-up
	idle      atomic.Int32
	nextID    atomic.Int32
	stopping  atomic.Bool
	stopped   atomic.Bool
	workerWG  sync.WaitGroup
	// listening is set once Start has stored the listener: in ring mode
	// the reaper, whose loop runs from New on, loads it before it reads
	// s.listener (the ordering the poll's completion implies is the
	// kernel's, which the Go memory model does not see).
	listening atomic.Bool
	// stopFD is an eventfd Stop makes readable: it ends the wait of the
	// worker that waits holding its P (wait), whose thread is not locked,
	// so not known to Stop. -1 in ring mode.
	stopFD int
	// syncWake: the listener has SYNC_WAKE_UP (set by Start; see send).
	syncWake   bool
	stopResync chan struct{}
	stopWatch  chan struct{}

	mirrorMu sync.Mutex
	mirror   atomic.Pointer[mirror]

	firstForkDone atomic.Bool
	rootPid       atomic.Int32 // the first process (RegisterRoot), in roots
	firstForkMu   sync.Mutex
	firstForkErr  error

	reclaimMu sync.Mutex
	zombiesMu sync.Mutex
	zombies   []ref
	killed    sync.Map // pid -> struct{}: memory kills already reported

	uts      unix.Utsname
	hostMu   sync.Mutex
	hostFD   int
	hostName []byte

	stats *Stats
}

// New prepares a supervisor (it may run while the sandbox's first process
// starts: nothing the process does waits on it before Start); Start begins
// serving.
func New(cfg Config) (*Supervisor, error) {
	if cfg.Arch == nil {
		return nil, errors.New("supervisor: no architecture")
	}
	if cfg.Workers < 1 {
		cfg.Workers = 1
	}
	if cfg.MemoryResync <= 0 {
		cfg.MemoryResync = 100 * time.Millisecond
	}
	prepareWakeSignal()
	s := &Supervisor{
		cfg: cfg, listener: -1, selfPid: int32(unix.Getpid()), stopFD: -1,
		hostFD: -1, stopResync: make(chan struct{}), stopWatch: make(chan struct{}),
	}
	// One shard per worker we start with plus one for the exit reaper.
	s.shards = cfg.Workers + 1
	if cfg.MaxProcesses > 0 {
		s.procs = accounting.New(cfg.MaxProcesses, s.shards, 1)
	}
	if cfg.MaxMemory > 0 {
		s.mem = accounting.New(cfg.MaxMemory, s.shards, 0)
	}
	s.arena.reserve(arenaChunk) // grows (off the hot path) as processes appear
	s.handlers = make([]handlerFn, cfg.Arch.MaxNr()+1)
	s.forkKind = make([]uint8, cfg.Arch.MaxNr()+1)
	s.isMem = make([]bool, cfg.Arch.MaxNr()+1)
	s.install()
	if cfg.Stats {
		s.stats = newStats(cfg.Arch)
	}
	if cfg.Hostname != "" {
		if err := s.prepareHostname(cfg.Hostname); err != nil {
			return nil, err
		}
	}
	s.nrOpen, s.nrOpenat2 = nrOf(cfg.Arch, "open"), nrOf(cfg.Arch, "openat2")
	s.reaper = s.newWorker(cfg.Workers) // the last shard
	if cfg.UseRing {
		if err := s.ensureRing(); err != nil {
			s.closeHostname()
			return nil, err
		}
	}
	// sandlock's own record: the parent of the first process (see
	// RegisterRoot) and of orphans adopted.
	s.self = s.arena.alloc()
	s.self.pid.Store(s.selfPid)
	s.self.state.Store(stLive | stSelf)
	s.pids.insert(s.selfPid, s.self.ref(), s.live)
	return s, nil
}

func (s *Supervisor) on(name string, h handlerFn) {
	if nr, ok := s.cfg.Arch.Nr(name); ok {
		s.handlers[nr] = h
	}
}

// install fills the dispatch table.
func (s *Supervisor) install() {
	for _, f := range []struct {
		name string
		kind uint8
	}{{"clone", forkClone}, {"fork", forkFork}, {"vfork", forkVfork}} {
		s.on(f.name, (*worker).fork)
		if nr, ok := s.cfg.Arch.Nr(f.name); ok {
			s.forkKind[nr] = f.kind
		}
	}
	for _, m := range []struct {
		name string
		h    handlerFn
	}{{"mmap", (*worker).mmap}, {"mprotect", (*worker).mprotect}, {"pkey_mprotect", (*worker).mprotect},
		{"brk", (*worker).brk}, {"mremap", (*worker).mremap}, {"shmget", (*worker).shmget}} {
		s.on(m.name, m.h)
		if nr, ok := s.cfg.Arch.Nr(m.name); ok {
			s.isMem[nr] = true
		}
	}
	s.on("sysinfo", (*worker).sysinfo)
	s.on("uname", (*worker).uname)
	s.on("open", (*worker).open)
	s.on("openat", (*worker).open)
	s.on("openat2", (*worker).open)
	s.on("rt_sigaction", (*worker).sigaction)
}

// ensureRing creates the io_uring and starts reaping it, once. A sandbox of
// one process never needs it: sandlock waits for its first process itself.
func (s *Supervisor) ensureRing() error {
	if s.ringOK.Load() {
		return nil
	}
	s.ringMu.Lock()
	defer s.ringMu.Unlock()
	if s.ringOK.Load() {
		return nil
	}
	r, err := ring.New(ring.Options{Entries: 256})
	if err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	s.ring = r
	s.loop = pidwatch.New(r, 128, s.onExits, s.onRing)
	if !s.cfg.UseRing {
		// Exits are gathered: a fork-heavy sandbox wakes the reaper once
		// per batch. A limit that looks reached meanwhile polls the
		// pidfds itself (reclaimProcs). The dead hold their process slots
		// until their batch: with a 10 ms window, two shell loops under
		// -P 64 peaked at 48-58 processes counted (18 with 2 ms), next to
		// the limit, whose slow path polls every pidfd; the window's
		// saving (fewer wake-ups, 3-4% of the two loops' time in three
		// runs of four) was not worth that.
		s.loop.SetGather(32, 2*time.Millisecond)
		s.loop.SetBeforeReap(s.armPending, func() bool { return s.unarmed.Load() > 0 })
	}
	s.loop.Start()
	s.ringOK.Store(true)
	return nil
}

// watch arms the exit watch of a registered process. With gathered exits
// (the default, not ring mode) the watch is deferred: the reaper arms the
// watches of every process registered meanwhile when it next wakes, at most
// one gathering window later (armPending).
func (s *Supervisor) watch(fd int, r ref) error {
	if err := s.ensureRing(); err != nil {
		return err
	}
	if s.cfg.UseRing {
		return s.loop.Watch(fd, uint64(r))
	}
	if s.unarmed.Add(1) == 1 {
		if err := s.loop.Wake(); err != nil {
			// Let the next registration wake the reaper: the count only
			// triggers the pass, which finds every unarmed record by its
			// state, this one included.
			s.unarmed.Store(0)
			return err
		}
	}
	return nil
}

// armPending is the reaper's hook: it arms the exit watches of the
// processes registered since it last ran, submitting their polls from its
// own thread.
//
// Armed by the worker that registers it, a process's poll made its exit a
// task for that worker's thread: the kernel woke the worker (moving it to
// the CPU of the exit) for every exit, and xargs -P 2 over 2000 processes
// took 1.37x bare instead of 1.17x without watches. Deferred, a
// short-lived process has exited by the time its poll is submitted: the
// poll completes at once, in the submitting call, and wakes nobody.
func (s *Supervisor) armPending() {
	if s.unarmed.Swap(0) == 0 {
		return
	}
	// Under the slow path's mutex: no record is finalized (its pidfd
	// closed) while its descriptor is read here.
	s.reclaimMu.Lock()
	defer s.reclaimMu.Unlock()
	n := s.arena.n.Load()
	armed := false
	for i := uint32(0); i < n; i++ {
		p := s.arena.get(i)
		st := p.state.Load()
		if st&(stLive|stReady) != stLive|stReady || st&(stArmed|stExited|stGone|stSelf|stRoot) != 0 {
			continue
		}
		fd := p.pidfd.Load()
		if fd < 0 {
			continue
		}
		if err := s.loop.Arm(int(fd), uint64(p.ref())); err != nil {
			s.unarmed.Add(1) // the next wake-up tries again
			continue
		}
		p.setState(stArmed)
		armed = true
	}
	if armed {
		s.loop.Flush()
	}
}

// Start begins serving listener, the seccomp user-notification fd (the
// supervisor owns it from now on). The sandbox's first process, which the
// listener's filter confines, comes from RegisterRoot. The kernel is asked
// to wake the supervisor and the answered tasks on the waker's CPU
// (SYNC_WAKE_UP, 6.6+; without it each notification costs a cross-CPU
// wake-up each way; see send).
func (s *Supervisor) Start(listener int) error {
	s.syncWake = setFlags(listener, sys.UserNotifFdSyncWakeUp) == nil
	if s.cfg.UseRing {
		s.listener = listener
		s.listening.Store(true)
		if err := s.ring.PollAdd(s.listener, unix.POLLIN, true, pidwatch.Tag(pidwatch.KindOther, 0)); err != nil {
			return fmt.Errorf("supervisor: poll listener: %w", err)
		}
		if err := s.ring.Submit(); err != nil {
			return fmt.Errorf("supervisor: %w", err)
		}
	} else {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			return fmt.Errorf("supervisor: eventfd: %w", err)
		}
		s.stopFD = fd
		// The workers start with the listener known (spares later too):
		// none has to wait for it.
		s.listener = listener
		for i := 0; i < s.cfg.Workers; i++ {
			s.startWorker()
		}
	}
	s.startBackground()
	return nil
}

// startBackground starts the supervisor's periodic work (memory resync,
// stall watch); Start calls it.
func (s *Supervisor) startBackground() {
	if s.mem != nil {
		go s.resyncLoop()
	}
	if !s.cfg.UseRing {
		go s.watchStalls()
	}
}

// live reports whether r names a registered, not yet gone process.
func (s *Supervisor) live(r ref) bool {
	p := s.arena.resolve(r)
	return p != nil && p.has(stLive) && !p.has(stGone)
}

// Stop ends the workers, stops the exit reaper and closes the listener and
// every descriptor the supervisor holds.
//
// A worker blocked in NOTIF_RECV is not woken by anything that happens to
// the listener (closing it, or the last sandboxed process exiting), so Stop
// interrupts each one with wakeSignal sent to its thread.
func (s *Supervisor) Stop() {
	if !s.stopped.CompareAndSwap(false, true) {
		return
	}
	s.stopping.Store(true)
	roots.CompareAndDelete(s.rootPid.Load(), s)
	if s.mem != nil {
		close(s.stopResync)
	}
	close(s.stopWatch)
	if s.stopFD >= 0 {
		// Ends the P-holding wait for good (the count stays readable).
		unix.Write(s.stopFD, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
	for i := 0; s.nworkers.Load() > 0; i++ {
		s.wmu.Lock()
		for _, w := range s.receivers {
			if tid := w.tid.Load(); tid > 0 {
				unix.Tgkill(int(s.selfPid), int(tid), wakeSignal)
			}
		}
		s.wmu.Unlock()
		// A worker between its check of stopping and its RECV misses the
		// signal; the next round catches it.
		time.Sleep(time.Duration(min(i+1, 20)) * 50 * time.Microsecond)
	}
	s.workerWG.Wait()
	s.ringMu.Lock()
	if s.ringOK.Load() {
		s.loop.Stop()
		s.ring.Close()
	}
	s.ringMu.Unlock()
	// With no receiver left, closing the listener answers anything still
	// queued with ENOSYS.
	if s.listener >= 0 {
		unix.Close(s.listener)
	}
	if s.stopFD >= 0 {
		unix.Close(s.stopFD)
	}
	s.closeHostname()
	s.closeMirror()
	// Close what the records still hold.
	for i := uint32(0); i < s.arena.n.Load(); i++ {
		p := s.arena.get(i)
		if p.has(stLive) && !p.has(stSelf) {
			closeIf(&p.pidfd)
			p.closeProcFiles()
		}
	}
}

func closeIf(fd *atomic.Int32) {
	if v := fd.Swap(-1); v >= 0 {
		unix.Close(int(v))
	}
}

// worker is one receiving goroutine's state: the notification and reply
// buffers and scratch space, reused for every request.
type worker struct {
	s       *Supervisor
	id      int
	shard   int
	n       sys.SeccompNotif
	resp    sys.SeccompNotifResp
	sent    bool
	slept   bool         // the wait for w.n slept: its notification woke the worker
	lastTid int32        // the task of the previous answer (send)
	tid     atomic.Int32 // its thread while it serves the listener, else 0
	busy    atomic.Int64 // nanotime when its current notification arrived, 0 when none
	raw     bool         // it holds holdingP (see wait)
	// locked: its goroutine is locked to its thread, whose id is in tid
	// (lock). The worker that waits holding its P is not: Stop wakes
	// it through stopFD, and locking a thread for it made the runtime
	// start its template thread at every launch (75 us of CPU).
	locked bool
	buf    [4096]byte
	path   [256]byte
	tids   []int32
	pids   []int32
	exits  []*proc
	stats  *workerStats
}

func (s *Supervisor) newWorker(id int) *worker {
	w := &worker{s: s, id: id, shard: id % s.shards,
		tids: make([]int32, 0, maxMarkers), pids: make([]int32, 0, 64), exits: make([]*proc, 0, 128)}
	if s.stats != nil {
		w.stats = s.stats.worker()
	}
	return w
}

func (s *Supervisor) startWorker() {
	w := s.newWorker(int(s.nextID.Add(1) - 1))
	s.nworkers.Add(1)
	s.workerWG.Add(1)
	go w.run()
}

// spare makes sure another worker is receiving before the caller does
// something slow (takes a contended lock, starts the watchdog, reads /proc
// at length): no handler holds up the other processes.
func (w *worker) spare() {
	s := w.s
	if !s.cfg.UseRing && s.idle.Load() == 0 && !s.stopping.Load() && s.nworkers.Load() < maxWorkers {
		s.startWorker()
	}
}

// stallAfter is how long a handler may run before watch starts a spare for
// it: the case no spare() call anticipated.
const stallAfter = 5 * time.Millisecond

// watchStalls starts a spare worker whenever every worker has been inside one
// handler for longer than stallAfter, until the supervisor stops.
func (s *Supervisor) watchStalls() {
	t := time.NewTicker(stallAfter)
	defer t.Stop()
	for {
		select {
		case <-s.stopWatch:
			return
		case <-t.C:
		}
		if s.idle.Load() > 0 || s.stopping.Load() || s.nworkers.Load() >= maxWorkers {
			continue
		}
		now := nanotime()
		stalled := false
		s.wmu.Lock()
		for _, w := range s.receivers {
			if b := w.busy.Load(); b != 0 && now-b > int64(stallAfter) {
				stalled = true
			}
		}
		s.wmu.Unlock()
		if stalled {
			s.startWorker()
		}
	}
}

func (w *worker) run() {
	s := w.s
	defer s.workerWG.Done()
	if s.listener < 0 || s.stopping.Load() {
		s.nworkers.Add(-1)
		return
	}
	w.enlist()
	defer w.delist()
	for !s.stopping.Load() {
		w.n = sys.SeccompNotif{}
		s.idle.Add(1)
		t0 := nanotime()
		polled, ok := w.wait()
		if !ok {
			s.idle.Add(-1)
			// A signal ended the wait: the runtime's preemption signal
			// among others. Yield, so that a stop-the-world waiting on
			// this goroutine's P proceeds.
			runtime.Gosched()
			continue
		}
		if s.stopping.Load() {
			s.idle.Add(-1)
			break
		}
		if !polled || s.nworkers.Load() != 1 {
			// A RECV that may block: Stop must be able to interrupt it
			// with a signal to this thread. (After the P-holding wait of
			// the sole worker it does not block: nobody else receives,
			// and no spare starts while this worker is idle.)
			w.lock()
		}
		err := sys.NotifRecv(s.listener, &w.n)
		s.idle.Add(-1)
		if err != nil {
			// EINTR: Stop's wakeSignal (or another signal without
			// SA_RESTART); ENOENT: the task died between the wake-up and
			// the receive, or no task uses the filter any more (the
			// sandbox is over: the kernel answers every RECV so at once,
			// and the worker would spin). Anything else means the
			// listener is gone.
			if err == unix.EINTR || err == unix.ENOENT && !sys.ListenerHungUp(s.listener) {
				continue
			}
			break
		}
		now := nanotime()
		w.busy.Store(now)
		// Whether the wait slept (send): the notification woke the worker.
		// A blocking RECV (not polled) may have slept or not: answered
		// synchronously, as every answer was before send's distinction.
		w.slept = !polled || now-t0 > sleptNs
		w.handle()
		w.busy.Store(0)
		// One receiver at a time is fastest: with two, the kernel hands
		// each notification to the one that has waited longest, a
		// different thread every time (about 9 us more per round trip
		// here). A spare started for a slow handler (spare, watchStalls) leaves
		// once the configured number of workers is receiving again.
		if int(s.idle.Load()) >= s.cfg.Workers {
			break
		}
	}
}

// holdingP is taken by the one worker in the process that waits for
// notifications holding its P (wait).
var holdingP atomic.Bool

// holdPOK reports whether a worker may wait holding its P: the process
// has two Ps or more, and the runtime's preemption signal is on (it is
// what frees the P for a stop-the-world: GODEBUG=asyncpreemptoff=1 turns
// it off). Asked once: GOMAXPROCS takes the scheduler's lock.
var holdPOK = sync.OnceValue(func() bool {
	return runtime.GOMAXPROCS(0) >= 2 && !strings.Contains(os.Getenv("GODEBUG"), "asyncpreemptoff=1")
})

// wait returns once the listener has a notification (or is hung up, or
// Stop has begun), ok false when a signal interrupted the wait; polled
// says that it waited itself (holding its P), rather than leaving the
// wait to a blocking RECV. The sole receiver of a supervisor
// waits with its P held: a thread that blocks in a syscall the Go way lets
// the runtime's monitor take its P back after 20 us, and each notification
// after an idle spell then pays for getting a P again and for the monitor
// and other threads the hand-off wakes: ~36 us a round trip after 200 us
// of quiet here, against ~20 us held (README). Only one worker in the
// process may hold its P so (holdingP), and only with two Ps or more:
// every other waits in the blocking RECV.
func (w *worker) wait() (polled, ok bool) {
	s := w.s
	if !w.raw {
		if s.nworkers.Load() != 1 || holdingP.Load() || !holdPOK() || !holdingP.CompareAndSwap(false, true) {
			return false, true
		}
		w.raw = true
	}
	if s.nworkers.Load() != 1 {
		return false, true
	}
	// A hung-up listener (see sys.ListenerHungUp) returns at once; the
	// RECV that follows fails with ENOENT, and run ends.
	return true, sys.WaitReadableHoldingP(s.listener, s.stopFD) != unix.EINTR
}

// lock locks the worker's goroutine to its thread, once, and makes the
// thread known to Stop (which signals it to interrupt a blocking RECV). A
// locked worker stays locked (the loop never parks, so locking costs no
// extra wake-up) until it leaves.
func (w *worker) lock() {
	if w.locked {
		return
	}
	runtime.LockOSThread()
	w.locked = true
	w.tid.Store(int32(unix.Gettid()))
}

// enlist makes the worker known to Stop.
func (w *worker) enlist() {
	s := w.s
	s.wmu.Lock()
	s.receivers = append(s.receivers, w)
	s.wmu.Unlock()
}

// delist counts the worker out (it no longer receives).
func (w *worker) delist() {
	s := w.s
	s.wmu.Lock()
	for i, o := range s.receivers {
		if o == w {
			last := len(s.receivers) - 1
			s.receivers[i], s.receivers[last] = s.receivers[last], nil
			s.receivers = s.receivers[:last]
			break
		}
	}
	w.tid.Store(0)
	s.nworkers.Add(-1)
	s.wmu.Unlock()
	if w.raw {
		w.raw = false
		holdingP.Store(false)
	}
	if w.locked {
		w.locked = false
		runtime.UnlockOSThread()
	}
}

// onRing handles completions of the listener poll (UseRing mode).
func (s *Supervisor) onRing(c ring.CQE) {
	w := s.reaper
	if c.Res < 0 || c.Res&(unix.POLLHUP|unix.POLLERR) != 0 || !s.listening.Load() {
		return
	}
	if c.Res&unix.POLLIN != 0 {
		// Drain every pending notification; the listener reports POLLIN
		// while any is queued. Answered as they come, synchronously (send):
		// the ring's completions say nothing of where the task waits.
		w.slept = true
		for {
			var pfd = [1]unix.PollFd{{Fd: int32(s.listener), Events: unix.POLLIN}}
			w.n = sys.SeccompNotif{}
			if err := sys.NotifRecv(s.listener, &w.n); err != nil {
				break
			}
			w.busy.Store(nanotime())
			w.handle()
			w.busy.Store(0)
			if n, _ := unix.Poll(pfd[:], 0); n <= 0 || pfd[0].Revents&unix.POLLIN == 0 {
				break
			}
		}
	}
	if !c.More() && !s.stopping.Load() {
		s.ring.PollAdd(s.listener, unix.POLLIN, true, pidwatch.Tag(pidwatch.KindOther, 0))
		s.ring.Submit()
	}
}

// Reply helpers. The response starts as CONTINUE.
func (w *worker) cont() { w.resp.Flags, w.resp.Error, w.resp.Val = sys.UserNotifFlagContinue, 0, 0 }
func (w *worker) fail(e unix.Errno) {
	w.resp.Flags, w.resp.Error, w.resp.Val = 0, -int32(e), 0
}
func (w *worker) value(v int64) { w.resp.Flags, w.resp.Error, w.resp.Val = 0, 0, v }

// handle answers w.n.
func (w *worker) handle() {
	s := w.s
	var t0 int64
	if w.stats != nil {
		t0 = nanotime()
	}
	n := &w.n
	tid := int32(n.Pid)
	w.resp = sys.SeccompNotifResp{ID: n.ID}
	w.sent = false
	w.cont()
	nr := int(n.Data.Nr)
	if testHook != nil {
		testHook(nr)
	}
	var h handlerFn
	if uint(nr) < uint(len(s.handlers)) {
		h = s.handlers[nr]
	}
	switch {
	case h == nil:
	default:
		p := w.procOf(tid)
		if p == nil {
			w.unattributed(nr)
			break
		}
		w.settle(p, tid)
		h(w, p)
	}
	if w.stats != nil {
		// Up to the reply, not after it: the reply wakes the process,
		// which often preempts this thread inside the ioctl, and that wait
		// delays nobody.
		w.stats.record(nr, nanotime()-t0)
	}
	if !w.sent {
		// ENOENT: the task died or was interrupted meanwhile; nothing to do.
		w.send()
	}
}

// unattributed answers a request from a task the supervisor cannot place
// (it is exiting, or /proc could not be read): creating processes or
// memory is refused, everything else continues.
func (w *worker) unattributed(nr int) {
	s := w.s
	switch {
	case s.isFork(nr):
		w.fail(unix.EAGAIN)
	case s.isMem[nr]:
		w.fail(unix.ENOMEM)
	}
}

// settle runs before every handler: a notification from tid proves that
// tid's previous syscall has finished, so a fork it made can be resolved
// and its memory reservations no longer need protecting from a resync.
func (w *worker) settle(p *proc, tid int32) {
	if p.nmarkers.Load() > 0 {
		for i := range p.markers {
			if p.markers[i].tid.Load() == tid {
				w.resolveFork(p, tid)
				break
			}
		}
	}
	p.clearPending(tid)
}

// Settle waits, at most for d, until no notification is being handled: a
// handler may still be settling the charge of a process that died while
// it ran. Wait calls it before its report.
func (s *Supervisor) Settle(d time.Duration) {
	for deadline := time.Now().Add(d); s.busy() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Microsecond)
	}
}

// busy reports whether a worker (or, in ring mode, the reaper) is handling
// a notification.
func (s *Supervisor) busy() bool {
	if w := s.reaper; w != nil && w.busy.Load() != 0 {
		return true
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, w := range s.receivers {
		if w.busy.Load() != 0 {
			return true
		}
	}
	return false
}

// nrOf returns the number of syscall name on a, or -1.
func nrOf(a *bpfprog.Arch, name string) int {
	if nr, ok := a.Nr(name); ok {
		return nr
	}
	return -1
}

// Forked reports whether any sandboxed process has created another.
func (s *Supervisor) Forked() bool { return s.firstForkDone.Load() }

// Root returns the pid of the sandbox's first process once registered.
func (s *Supervisor) Root() int {
	if p := s.arena.resolve(ref(s.root.Load())); p != nil {
		return int(p.pid.Load())
	}
	return 0
}
