package supervisor

import (
	"sync"

	"github.com/sandlock/sandlock/internal/sys"
	"golang.org/x/sys/unix"
)

// procOf returns the record of the process tid belongs to, registering the
// process (and remembering the thread) the first time it is seen.
func (w *worker) procOf(tid int32) *proc {
	s := w.s
	if p := s.arena.resolve(s.pids.load(tid)); p != nil && p.has(stLive) && !p.has(stExited) {
		return p
	}
	return w.discover(tid)
}

// discover places a task the supervisor has not seen: a process whose fork
// is still in flight, or a new thread of a known process.
func (w *worker) discover(tid int32) *proc {
	s := w.s
	tgid, ppid, leaderFD, ok := w.identify(tid)
	// The task may have died and its id been reused meanwhile.
	if !ok || !sys.NotifIDValid(s.listener, w.n.ID) {
		if leaderFD >= 0 {
			unix.Close(leaderFD)
		}
		return nil
	}
	p := s.arena.resolve(s.pids.load(tgid))
	if p == nil || !p.has(stLive) || p.has(stExited) {
		p = w.registerFD(tgid, ppid, nil, 0, leaderFD)
		if p == nil {
			return nil
		}
	} else if leaderFD >= 0 {
		unix.Close(leaderFD)
	}
	if int32(tgid) != tid {
		s.pids.insert(tid, p.ref(), func(r ref) bool { return r == p.ref() })
	}
	return p
}

// register records process pid (child of ppid): a pidfd watched for its
// exit, a process slot (taken over from the fork marker that created it, or
// forced when none is found) and its memory.
func (w *worker) register(pid, ppid int32, parent *proc, markerTid int32) *proc {
	return w.registerFD(pid, ppid, parent, markerTid, -1)
}

// registerFD is register with pid's pidfd already open (fd), or -1.
func (w *worker) registerFD(pid, ppid int32, parent *proc, markerTid int32, fd int) *proc {
	s := w.s
	if fd < 0 {
		var err error
		if fd, err = unix.PidfdOpen(int(pid), 0); err != nil {
			return nil
		}
	}
	p := s.arena.alloc()
	if p == nil {
		unix.Close(fd)
		return nil
	}
	p.pid.Store(pid)
	p.parent.Store(ppid)
	p.pidfd.Store(int32(fd))
	st := uint32(stLive)
	if ppid == s.selfPid {
		st |= stOurChild
	}
	p.state.Store(st)
	r := p.ref()
	if got := s.pids.insert(pid, r, s.live); got != r {
		unix.Close(fd)
		p.pidfd.Store(-1)
		s.arena.recycle(p)
		return s.arena.resolve(got)
	}
	if registerHook != nil {
		registerHook(p)
	}
	// The process slot: the marker of the fork that made it.
	if parent == nil {
		parent = s.arena.resolve(s.pids.load(ppid))
	}
	var mem int64
	taken := false
	if parent != nil && (parent.has(stLive) || parent.has(stSelf)) {
		if markerTid != 0 {
			mem, taken = parent.takeMarker(markerTid)
		} else {
			mem, taken = w.takeMarkerFor(parent, pid)
		}
	}
	if !taken {
		s.procs.Force(w.shard, 1)
	}
	p.setState(stCounted)
	if parent != nil && parent.has(stSelf) && s.root.Load() == 0 {
		s.root.Store(uint64(r))
		p.setState(stRoot)
	}
	if s.mem != nil {
		// The fork's reservation (the parent's charge: the child is its
		// copy) is the child's charge; the periodic resync and the slow
		// path correct it from /proc later. Measuring it here cost every
		// fork an open and a read of /proc/PID/statm.
		p.mem.Store(mem)
	} else if mem > 0 {
		s.mem.Release(w.shard, mem)
	}
	if m := s.mirror.Load(); m != nil {
		m.set(p)
	}
	// From here on its exit may be settled. Until now the record was live
	// (visible to the scans) but not ready: settling it earlier (a slow
	// path polling every pidfd finds it dead) would recycle it before it
	// holds its slot, and the slot taken above would never be given back.
	p.setState(stReady)
	if !p.has(stRoot) {
		// The first process is waited for by the sandbox itself. Without
		// a watch, an exit is still found by the slow path.
		s.watch(fd, r)
	}
	return p
}

// registerHook, when set (by tests only), runs in registerFD once the record
// is live, before it is ready.
var registerHook func(*proc)

// takeMarkerFor takes the marker of the fork that created child: the only
// one if the parent has one fork in flight, otherwise the one whose thread
// lists child among its children.
func (w *worker) takeMarkerFor(parent *proc, child int32) (int64, bool) {
	switch parent.nmarkers.Load() {
	case 0:
		return 0, false
	case 1:
		return parent.takeMarker(0)
	}
	w.tids = parent.markerTids(w.tids[:0])
	for _, tid := range w.tids {
		text, err := w.readProc(parent.pid.Load(), tid, "children")
		if err != nil {
			continue
		}
		found := false
		eachInt(text, func(v int64) { found = found || int32(v) == child })
		if found {
			return parent.takeMarker(tid)
		}
	}
	return parent.takeMarker(0)
}

// The kinds of fork-family syscalls (Supervisor.forkKind).
const (
	notFork uint8 = iota
	forkFork
	forkVfork
	forkClone
)

// isFork reports whether syscall nr is of the fork family.
func (s *Supervisor) isFork(nr int) bool {
	return uint(nr) < uint(len(s.forkKind)) && s.forkKind[nr] != notFork
}

// forkFlags returns the clone flags of a fork-family notification.
func (w *worker) forkFlags() uint64 {
	switch w.s.forkKind[w.n.Data.Nr] {
	case forkFork:
		return uint64(unix.SIGCHLD)
	case forkVfork:
		return unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD)
	}
	return w.n.Data.Args[0]
}

// fork reserves what a new process needs before letting the fork happen.
func (w *worker) fork(p *proc) {
	s := w.s
	tid := int32(w.n.Pid)
	flags := w.forkFlags()
	if flags&unix.CLONE_PARENT != 0 {
		// The child would be a sibling, outside the parent's children where
		// the supervisor looks for it.
		w.fail(unix.EPERM)
		return
	}
	if !p.has(stSelf) && !s.firstForkDone.Load() {
		w.spare() // the watchdog starts: milliseconds
		if err := s.firstFork(); err != nil {
			w.fail(unix.EAGAIN)
			return
		}
	}
	if !s.procs.TryAcquire(w.shard, 1) {
		w.reclaimProcs()
		if !s.procs.TryAcquire(w.shard, 1) {
			w.fail(unix.EAGAIN)
			return
		}
	}
	var mem int64
	if s.mem != nil && flags&unix.CLONE_VM == 0 {
		mem = p.mem.Load() - p.pendingBytes()
		if mem < 0 {
			mem = 0
		}
		if !w.memAcquire(mem) {
			s.procs.Release(w.shard, 1)
			w.fail(unix.ENOMEM)
			return
		}
	}
	marked := p.addMarker(tid, mem)
	if !marked {
		// More forks in flight in this process than markers: hold the slot
		// until the process exits.
		p.overflow.Add(1)
		if mem > 0 {
			p.pendOverflow.Add(mem)
			p.mem.Add(mem)
		}
	}
	if st := p.state.Load(); st&stLive == 0 || st&(stExited|stGone) != 0 {
		// The process died while its fork was being reserved (killed: a
		// thread in a notified syscall waits killably) and its exit is
		// settled already: nothing else would give the reservation back.
		// The markers and the overflow are taken by swap or CAS, so the
		// settlement and this release never both happen.
		if marked {
			if m, ok := p.takeMarker(tid); ok {
				s.procs.Release(w.shard, 1)
				s.mem.Release(w.shard, m)
			}
		} else if o := p.overflow.Swap(0); o > 0 {
			s.procs.Release(w.shard, int64(o))
		}
		w.settleLate(p)
		return
	}
	if w.stats != nil {
		w.stats.started.Add(1)
	}
}

func (s *Supervisor) firstFork() error {
	s.firstForkMu.Lock()
	defer s.firstForkMu.Unlock()
	if !s.firstForkDone.Load() {
		if s.cfg.Events.FirstFork != nil {
			s.firstForkErr = s.cfg.Events.FirstFork()
		}
		s.firstForkDone.Store(true)
	}
	return s.firstForkErr
}

// resolveFork settles the fork tid made: the child, if it exists and is not
// registered yet, takes over the marker; otherwise the fork failed or the
// child is already gone, and the marker's reservations are released.
func (w *worker) resolveFork(p *proc, tid int32) {
	s := w.s
	text, err := w.children(p, tid)
	if err == nil {
		w.pids = w.pids[:0]
		eachInt(text, func(v int64) { w.pids = append(w.pids, int32(v)) })
		for _, c := range w.pids {
			if s.live(s.pids.load(c)) {
				continue
			}
			w.register(c, p.pid.Load(), p, tid)
		}
	} else if err != unix.ENOENT && err != unix.ESRCH {
		return // keep the marker: better to hold a slot than lose count
	}
	if mem, ok := p.takeMarker(tid); ok {
		s.procs.Release(w.shard, 1)
		s.mem.Release(w.shard, mem)
	}
}

// children reads the children of thread tid of p, through a cached fd for
// the main thread.
func (w *worker) children(p *proc, tid int32) ([]byte, error) {
	pid := p.pid.Load()
	if tid != pid {
		return w.readProc(pid, tid, "children")
	}
	return w.readCached(p, &p.childrenFD, pid, "children", len(w.buf))
}

// onExits is pidwatch's batch callback: every process whose pidfd became
// readable in one reaping pass.
func (s *Supervisor) onExits(tokens []uint64) {
	w := s.reaper
	// Exits are settled under the slow path's mutex, so a fork that finds
	// no free slot sees each exit either fully settled or not at all.
	s.reclaimMu.Lock()
	defer s.reclaimMu.Unlock()
	w.exits = w.exits[:0]
	for _, t := range tokens {
		if p := s.arena.resolve(ref(t)); p != nil {
			w.exited(p)
		}
	}
	w.settleExits()
}

// exited takes a process's exit into account (once).
func (w *worker) exited(p *proc) {
	s := w.s
	if !p.has(stLive) || !p.setState(stExited) { // recycled, or settled
		return
	}
	if m := p.mem.Swap(0); m > 0 {
		s.mem.Release(w.shard, m)
	}
	if p.has(stRoot) && s.cfg.Events.RootExited != nil {
		s.cfg.Events.RootExited()
	}
	w.exits = append(w.exits, p)
}

// settleExits finishes a batch of exits: children that were still waiting
// for their fork to be resolved have been handed to sandlock (it is their
// subreaper) and are registered now; the exited processes' markers are
// released, and those already reaped are recycled.
func (w *worker) settleExits() {
	s := w.s
	orphans := false
	for _, p := range w.exits {
		if p.nmarkers.Load() > 0 || p.overflow.Load() > 0 {
			orphans = true
		}
	}
	if orphans {
		w.adoptOrphans()
	}
	for _, p := range w.exits {
		for {
			mem, ok := p.takeMarker(0)
			if !ok {
				break
			}
			s.procs.Release(w.shard, 1)
			s.mem.Release(w.shard, mem)
		}
		if o := p.overflow.Swap(0); o > 0 {
			s.procs.Release(w.shard, int64(o))
		}
		w.reapIfGone(p)
	}
	w.exits = w.exits[:0]
	w.recheckZombies()
}

// adoptOrphans registers sandlock's children that no record knows: the
// orphans of exited sandboxed processes.
func (w *worker) adoptOrphans() {
	s := w.s
	// No other sandbox's first process between its confinement and its
	// claim (ClaimRoot).
	spawnMu.Lock()
	defer spawnMu.Unlock()
	w.pids = w.pids[:0]
	forEachTask(s.selfPid, func(tid int32) {
		if b, err := w.readProc(s.selfPid, tid, "children"); err == nil {
			eachInt(b, func(v int64) { w.pids = append(w.pids, int32(v)) })
		}
	})
	for _, c := range w.pids {
		if !s.live(s.pids.load(c)) && s.isSandboxed(w, c) && !s.othersRoot(c) {
			w.register(c, s.selfPid, nil, -1)
		}
	}
}

// roots maps the first process of every supervisor in this process to its
// supervisor (or to claim). A program running several sandboxes at once
// has all their first processes (and the orphans of their descendants) as
// children, all sandboxed: a supervisor adopting orphans must leave the
// others' alone.
var roots sync.Map // int32 -> *Supervisor or claim

// claim stands in roots for a first process whose supervisor does not
// exist yet (it is made after the fork), or which has none: every
// supervisor leaves it alone.
type claim struct{}

// spawnMu orders the starts of first processes against adoptOrphans. The
// child confines itself before its exec, while the forking thread is
// suspended: from then until its pid is in roots, it is a sandboxed child
// of this process that no record knows, which another sandbox's adoption
// would take for one of its orphans (and kill at its end). A start holds
// spawnMu shared across that window (ClaimRoot), an adoption exclusively.
var spawnMu sync.RWMutex

// ClaimRoot runs start, which forks a sandbox's first process and returns
// its pid, and claims the process for its sandbox before any supervisor of
// this process can adopt it: RegisterRoot replaces the claim, or
// ReleaseClaim ends it (a sandbox without supervisor, once its process is
// reaped; a start that fails).
func ClaimRoot(start func() (pid int, err error)) (int, error) {
	spawnMu.RLock()
	defer spawnMu.RUnlock()
	pid, err := start()
	if err == nil {
		roots.Store(int32(pid), claim{})
	}
	return pid, err
}

// ReleaseClaim forgets ClaimRoot's claim on pid, unless RegisterRoot has
// replaced it.
func ReleaseClaim(pid int) { roots.CompareAndDelete(int32(pid), claim{}) }

// othersRoot reports whether pid is, or is in the process group of, the
// first process of another supervisor of this process.
func (s *Supervisor) othersRoot(pid int32) bool {
	if o, ok := roots.Load(pid); ok && o != s {
		return true
	}
	if pg, err := unix.Getpgid(int(pid)); err == nil && int32(pg) != pid {
		if o, ok := roots.Load(int32(pg)); ok && o != s {
			return true
		}
	}
	return false
}

// isSandboxed reports whether a child of sandlock runs under a seccomp
// filter with no_new_privs, as every sandboxed process does (a library user
// may have children of its own).
func (s *Supervisor) isSandboxed(w *worker, pid int32) bool {
	text, err := w.readProc(pid, 0, "status")
	if err != nil {
		return false
	}
	nnp, ok1 := field(text, "NoNewPrivs")
	sc, ok2 := field(text, "Seccomp")
	return ok1 && ok2 && nnp == 1 && sc == 2
}

// reapIfGone reaps p if it is sandlock's child, and recycles its record
// once the kernel has released it; a zombie waits in the zombie list.
func (w *worker) reapIfGone(p *proc) {
	s := w.s
	fd := int(p.pidfd.Load())
	if fd < 0 {
		w.finalize(p)
		return
	}
	if p.has(stOurChild) && !p.has(stRoot) {
		var info unix.Siginfo
		unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG, nil)
	}
	if err := unix.PidfdSendSignal(fd, 0, nil, 0); err == unix.ESRCH {
		w.finalize(p)
		return
	}
	s.zombiesMu.Lock()
	s.zombies = append(s.zombies, p.ref())
	s.zombiesMu.Unlock()
}

// recheckZombies recycles zombies that have been reaped since.
func (w *worker) recheckZombies() {
	s := w.s
	s.zombiesMu.Lock()
	z := s.zombies
	s.zombies = nil
	s.zombiesMu.Unlock()
	for _, r := range z {
		if p := s.arena.resolve(r); p != nil && !p.has(stGone) {
			w.reapIfGone(p)
		}
	}
}

// finalize releases what a reaped process held and recycles its record.
func (w *worker) finalize(p *proc) {
	s := w.s
	if !p.has(stLive) || !p.setState(stGone) { // recycled, or finalized
		return
	}
	if p.has(stCounted) {
		s.procs.Release(w.shard, 1)
	}
	if m := p.mem.Swap(0); m > 0 {
		s.mem.Release(w.shard, m)
	}
	s.pids.remove(p.pid.Load(), p.ref())
	closeIf(&p.pidfd)
	p.closeProcFiles()
	if m := s.mirror.Load(); m != nil {
		m.clear(p)
	}
	s.arena.recycle(p)
}

// spareAbove is how many process records the slow path of a fork may scan
// before it starts a spare receiver (spare) for the time it takes. A
// few polls of pidfds take microseconds, while a spare costs a goroutine,
// a thread's wake-up and a second receiver that leaves again: a sandbox
// whose -P is close to what it runs takes this path on most forks
// (xargs -P 2 under -P 4 started 279 spares for 600 processes, and took
// 1.15x its time under -P 64). A slow path that must wait for the lock
// (the reaper settling a batch, the memory resync) still starts one first,
// and a handler that gets slow otherwise is covered by watchStalls.
const spareAbove = 64

// reclaimProcs is the slow path of a fork that found no free slot: it
// collects exits the reaper has not delivered yet, reaped zombies, and forks
// whose thread has moved on without another notification.
func (w *worker) reclaimProcs() {
	s := w.s
	if s.arena.n.Load() > spareAbove || !s.reclaimMu.TryLock() {
		w.spare()
		s.reclaimMu.Lock()
	}
	defer s.reclaimMu.Unlock()
	w.pollExits()
	n := s.arena.n.Load()
	// Forks whose thread is no longer inside the fork have completed.
	for i := uint32(0); i < n; i++ {
		p := s.arena.get(i)
		if !p.has(stLive) || p.has(stGone) || p.nmarkers.Load() == 0 {
			continue
		}
		w.tids = p.markerTids(w.tids[:0])
		for _, tid := range w.tids {
			if !w.inFork(p.pid.Load(), tid) {
				w.resolveFork(p, tid)
			}
		}
	}
}

// inFork reports whether thread tid is (or may be) inside a fork-family
// syscall right now.
func (w *worker) inFork(pid, tid int32) bool {
	text, err := w.readProc(pid, tid, "syscall")
	if err != nil {
		return true
	}
	nr, _, ok := parseInt(text)
	return ok && w.s.isFork(int(nr))
}

// forEachTask calls f with every thread id of process pid.
func forEachTask(pid int32, f func(int32)) {
	var path [64]byte
	p := append(path[:0], "/proc/"...)
	p = appendInt(p, int64(pid))
	p = append(p, "/task"...)
	fd, err := unix.Open(string(p), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var buf [4096]byte
	for {
		n, err := unix.Getdents(fd, buf[:])
		if err != nil || n <= 0 {
			return
		}
		for off := 0; off < n; {
			reclen := int(buf[off+16]) | int(buf[off+17])<<8
			name := buf[off+19 : off+reclen]
			v, _, ok := parseInt(name)
			if ok {
				f(int32(v))
			}
			off += reclen
		}
	}
}

// Reap collects exits not delivered yet and zombies reaped since; the
// sandbox calls it while it waits for the last processes to go.
func (s *Supervisor) Reap() {
	w := s.newWorker(s.shards - 1)
	s.reclaimMu.Lock()
	defer s.reclaimMu.Unlock()
	w.pollExits()
}

// pollExits takes every exit the reaper has not delivered yet into account,
// polling each pidfd, and recycles what is gone. Callers hold reclaimMu.
func (w *worker) pollExits() {
	s := w.s
	w.exits = w.exits[:0]
	n := s.arena.n.Load()
	for i := uint32(0); i < n; i++ {
		p := s.arena.get(i)
		st := p.state.Load()
		if st&(stLive|stReady) != stLive|stReady || st&(stGone|stExited|stSelf) != 0 {
			continue // not registered, or not completely yet
		}
		if fd := p.pidfd.Load(); fd >= 0 {
			pfd := [1]unix.PollFd{{Fd: fd, Events: unix.POLLIN}}
			if k, _ := unix.Poll(pfd[:], 0); k > 0 {
				w.exited(p)
			}
		}
	}
	w.settleExits()
}

// ReapOrphan kills and reaps pid, a child of sandlock's, if it is one of
// this supervisor's processes, and reports whether it was. It goes by the
// record's pidfd, which names exactly the process registered: a pid that
// another sandbox's process (in the same program) has taken meanwhile is
// left alone.
func (s *Supervisor) ReapOrphan(pid int) bool {
	w := s.newWorker(s.shards - 1)
	s.reclaimMu.Lock()
	defer s.reclaimMu.Unlock()
	p := s.arena.resolve(s.pids.load(int32(pid)))
	if p == nil || !p.has(stLive|stReady) || p.has(stGone) || p.has(stSelf) || p.pid.Load() != int32(pid) {
		return false // a record being registered is settled on a later round
	}
	fd := int(p.pidfd.Load())
	if fd < 0 {
		return false
	}
	unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	var info unix.Siginfo
	var err error
	for {
		if err = unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED, nil); err != unix.EINTR {
			break
		}
	}
	w.exits = w.exits[:0]
	w.exited(p)
	w.settleExits()
	return err == nil
}

// RegisterRoot records the sandbox's first process once the spawn returned
// it, unless it registered itself already with an early notification.
func (s *Supervisor) RegisterRoot(pid int) {
	roots.Store(int32(pid), s)
	s.rootPid.Store(int32(pid))
	w := s.newWorker(s.shards - 1)
	p := s.arena.resolve(s.pids.load(int32(pid)))
	if p == nil || !p.has(stLive) {
		p = w.register(int32(pid), s.selfPid, s.self, 0)
	}
	if p != nil {
		p.setState(stRoot)
		s.root.Store(uint64(p.ref()))
	}
	if w.stats != nil {
		w.stats.started.Add(1) // the first process, which no notified fork made
	}
}

// ReleaseRoot recycles the first process's record after the sandbox reaped
// it.
func (s *Supervisor) ReleaseRoot() {
	if s.root.Load() == 0 {
		return
	}
	w := s.newWorker(s.shards - 1)
	s.reclaimMu.Lock()
	defer s.reclaimMu.Unlock()
	// Resolved under the mutex: a slow path polling every pidfd may have
	// settled the exit meanwhile and recycled the record. Settling it again
	// through a pointer taken before would recycle it twice, and two
	// processes would later share one record (and one process slot).
	p := s.arena.resolve(ref(s.root.Load()))
	if p == nil {
		return
	}
	w.exits = w.exits[:0]
	w.exited(p)
	w.settleExits()
}

// identify returns tid's thread group and parent. A thread-group leader
// (the common case: a process's first notification comes from its main
// thread) also gets its pidfd, which registration reuses. The kernel is
// asked through the pidfd (PIDFD_GET_INFO, 6.13+); older kernels, through
// /proc/TID/status, which costs the kernel far more (it computes every
// line, memory statistics included, under the process's mmap lock).
func (w *worker) identify(tid int32) (tgid, ppid int32, leaderFD int, ok bool) {
	var info sys.PidfdInfo
	fd, err := unix.PidfdOpen(int(tid), 0)
	if err == nil {
		if sys.PidfdGetInfo(fd, &info) == nil {
			return int32(info.Tgid), int32(info.Ppid), fd, true
		}
		unix.Close(fd)
	} else if err == unix.EINVAL {
		// Not a leader: a thread of a process the supervisor has not seen.
		if tfd, err := unix.PidfdOpen(int(tid), sys.PidfdThread); err == nil {
			err := sys.PidfdGetInfo(tfd, &info)
			unix.Close(tfd)
			if err == nil {
				return int32(info.Tgid), int32(info.Ppid), -1, true
			}
		}
	}
	text, err := w.readProc(tid, 0, "status")
	if err != nil {
		return 0, 0, -1, false
	}
	t, ok1 := field(text, "Tgid")
	pp, ok2 := field(text, "PPid")
	return int32(t), int32(pp), -1, ok1 && ok2
}
