package supervisor

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The mirror is the supervisor's table of live processes in shared memory,
// for a watchdog in another process: when sandlock dies (even by SIGKILL)
// the watchdog reads it and kills what it lists. Keeping it costs two
// stores per process and no syscall or wake-up, where handing the watchdog
// a pidfd per process cost a sendmsg and a wake-up of another process.
//
// It is a memfd of MirrorSlots entries indexed by the process record's
// slot; an entry is the pid and the process's identity: its pidfd's inode
// number, unique per process on kernels with pidfs (6.9+), or else its
// start time in clock ticks (/proc/PID/stat field 22). A reader checks the
// identity before killing, so a pid reused meanwhile is never hit.

// MirrorSlots is the number of entries of the mirror (one per possible
// process record).
const MirrorSlots = arenaChunks * arenaChunk

// MirrorEntry is one slot of the mirror.
type MirrorEntry struct {
	// Pid is the process, 0 for a free slot. It is written last.
	Pid atomic.Int32
	// ByStart says Identity is a start time, not a pidfd inode.
	ByStart atomic.Int32
	// Identity is the pidfd's inode number or the start time.
	Identity atomic.Uint64
}

type mirror struct {
	fd      int
	mem     []byte
	entries []MirrorEntry
	byStart bool
}

// Mirror returns a memfd holding the table of live processes (see above),
// creating it the first time; it stays current until Stop. The caller must
// not close the fd.
func (s *Supervisor) Mirror() (int, error) {
	s.mirrorMu.Lock()
	defer s.mirrorMu.Unlock()
	if s.stopped.Load() {
		return -1, errors.New("mirror: supervisor stopped")
	}
	if m := s.mirror.Load(); m != nil {
		return m.fd, nil
	}
	size := MirrorSlots * int(unsafe.Sizeof(MirrorEntry{}))
	fd, err := unix.MemfdCreate("sandlock-mirror", unix.MFD_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("mirror: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("mirror: %w", err)
	}
	b, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("mirror: %w", err)
	}
	m := &mirror{fd: fd, mem: b, entries: unsafe.Slice((*MirrorEntry)(unsafe.Pointer(&b[0])), MirrorSlots), byStart: !PidfsIdentity()}
	// Publish first, then copy the records already there: a registration
	// racing with the copy writes the same entry twice.
	s.mirror.Store(m)
	s.eachLive(func(p *proc) { m.set(p) })
	return fd, nil
}

// closeMirror unmaps and closes the mirror; Stop calls it once nothing
// registers processes any more.
func (s *Supervisor) closeMirror() {
	s.mirrorMu.Lock()
	defer s.mirrorMu.Unlock()
	if m := s.mirror.Swap(nil); m != nil {
		unix.Munmap(m.mem)
		unix.Close(m.fd)
	}
}

// set records p in its slot.
func (m *mirror) set(p *proc) {
	fd, pid := p.pidfd.Load(), p.pid.Load()
	if fd < 0 || pid <= 0 || int(p.idx) >= len(m.entries) {
		return
	}
	id, ok := Identity(int(fd), pid, m.byStart)
	if !ok {
		return
	}
	e := &m.entries[p.idx]
	e.Pid.Store(0)
	e.Identity.Store(id)
	if m.byStart {
		e.ByStart.Store(1)
	}
	e.Pid.Store(pid)
}

// clear frees p's slot.
func (m *mirror) clear(p *proc) {
	if int(p.idx) < len(m.entries) {
		m.entries[p.idx].Pid.Store(0)
	}
}

// PidfsIdentity reports whether pidfds have per-process inode numbers
// (pidfs, Linux 6.9+), checked once.
func PidfsIdentity() bool {
	pidfsOnce.Do(func() {
		a, err1 := unix.PidfdOpen(unix.Getpid(), 0)
		b, err2 := unix.PidfdOpen(unix.Getppid(), 0)
		if err1 == nil && err2 == nil {
			var sa, sb unix.Stat_t
			if unix.Fstat(a, &sa) == nil && unix.Fstat(b, &sb) == nil {
				pidfs = sa.Ino != sb.Ino
			}
		}
		if err1 == nil {
			unix.Close(a)
		}
		if err2 == nil {
			unix.Close(b)
		}
	})
	return pidfs
}

// Identity returns what identifies the process pidfd refers to (pid is its
// number): the pidfd's inode, or with byStart its start time.
func Identity(pidfd int, pid int32, byStart bool) (uint64, bool) {
	if !byStart {
		var st unix.Stat_t
		if unix.Fstat(pidfd, &st) != nil {
			return 0, false
		}
		return st.Ino, true
	}
	return StartTime(pid)
}

var (
	pidfsOnce sync.Once
	pidfs     bool
)

// StartTime returns pid's start time in clock ticks since boot.
func StartTime(pid int32) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		return 0, false
	}
	v, ok := statField(b, 22)
	return uint64(v), ok && v > 0
}
