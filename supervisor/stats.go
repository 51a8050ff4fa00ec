package supervisor

import (
	"math/bits"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sandlock/sandlock/bpfprog"
)

var epoch = time.Now()

// nanotime is a monotonic clock reading in nanoseconds.
func nanotime() int64 { return int64(time.Since(epoch)) }

// Latency histogram: 4 buckets per power of two of nanoseconds.
const (
	histSub     = 2 // log2 of buckets per octave
	histBuckets = 64 << histSub
)

func histIndex(ns int64) int {
	if ns < 1 {
		ns = 1
	}
	u := uint64(ns)
	e := bits.Len64(u) - 1
	if e < histSub {
		return int(u)
	}
	sub := (u >> (e - histSub)) & (1<<histSub - 1)
	return e<<histSub | int(sub)
}

// histValue is the upper bound of bucket i.
func histValue(i int) int64 {
	e := i >> histSub
	sub := i & (1<<histSub - 1)
	if e < histSub {
		return int64(i)
	}
	return int64((uint64(1<<histSub) | uint64(sub) + 1) << (e - histSub))
}

// Stats collects the supervisor's counters: one block per worker, written
// with uncontended atomic adds and summed when read.
type Stats struct {
	arch    *bpfprog.Arch
	mu      sync.Mutex
	workers []*workerStats
}

type workerStats struct {
	counts  []atomic.Uint64
	hist    [histBuckets]atomic.Uint64
	max     atomic.Int64
	started atomic.Uint64
}

func newStats(a *bpfprog.Arch) *Stats { return &Stats{arch: a} }

func (s *Stats) worker() *workerStats {
	w := &workerStats{counts: make([]atomic.Uint64, s.arch.MaxNr()+2)}
	s.mu.Lock()
	s.workers = append(s.workers, w)
	s.mu.Unlock()
	return w
}

func (w *workerStats) record(nr int, ns int64) {
	if uint(nr) >= uint(len(w.counts)) {
		nr = len(w.counts) - 1
	}
	w.counts[nr].Add(1)
	w.hist[histIndex(ns)].Add(1)
	for {
		m := w.max.Load()
		if ns <= m || w.max.CompareAndSwap(m, ns) {
			return
		}
	}
}

// Report is a snapshot of a supervisor's statistics.
type Report struct {
	// Notifications counts the notifications by syscall name.
	Notifications map[string]uint64 `json:"notifications"`
	// Total is the number of notifications.
	Total uint64 `json:"total"`
	// Latency of the handlers, receive to reply, in nanoseconds.
	LatencyP50 int64 `json:"latency_p50_ns"`
	LatencyP99 int64 `json:"latency_p99_ns"`
	LatencyMax int64 `json:"latency_max_ns"`
	// ProcessesStarted counts the sandbox's processes: its first (the
	// command) and every fork the supervisor allowed.
	ProcessesStarted uint64 `json:"processes_started"`
	// PeakProcesses and PeakMemory are the highest process count and memory
	// ledger (bytes) seen; 0 without the corresponding limit.
	PeakProcesses int64 `json:"peak_processes"`
	PeakMemory    int64 `json:"peak_memory_bytes"`
	// ProcessesInUse and MemoryInUse are the process count and memory
	// ledger when the report was taken: at exit, once every process is
	// reaped, both are 0.
	ProcessesInUse int64 `json:"processes_in_use"`
	MemoryInUse    int64 `json:"memory_in_use_bytes"`
	// WorkersStarted counts the receiving goroutines ever started (spares
	// included).
	WorkersStarted int `json:"workers_started"`
	// PeakRSS is the peak resident memory (VmHWM) of the process running
	// the supervisor: sandlock itself, or a library user's program.
	PeakRSS int64 `json:"supervisor_peak_rss_bytes"`
}

// Report returns the statistics collected so far (Config.Stats), or the
// peaks alone when statistics are off.
func (s *Supervisor) Report() Report {
	r := Report{Notifications: map[string]uint64{}, WorkersStarted: int(s.nextID.Load()), PeakRSS: peakRSS()}
	s.mem.NotePeak()
	s.procs.NotePeak()
	r.PeakMemory = s.mem.Peak()
	r.PeakProcesses = s.procs.Peak()
	r.ProcessesInUse = s.procs.InUse()
	r.MemoryInUse = s.mem.InUse()
	if s.stats == nil {
		return r
	}
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	var hist [histBuckets]uint64
	for _, w := range s.stats.workers {
		for nr := range w.counts {
			if c := w.counts[nr].Load(); c > 0 {
				r.Notifications[s.stats.arch.SyscallName(nr)] += c
				r.Total += c
			}
		}
		for i := range hist {
			hist[i] += w.hist[i].Load()
		}
		r.LatencyMax = max(r.LatencyMax, w.max.Load())
		r.ProcessesStarted += w.started.Load()
	}
	r.LatencyP50 = percentile(hist[:], r.Total, 0.50)
	r.LatencyP99 = percentile(hist[:], r.Total, 0.99)
	return r
}

func percentile(hist []uint64, total uint64, q float64) int64 {
	if total == 0 {
		return 0
	}
	want := uint64(q*float64(total) + 0.5)
	var seen uint64
	for i, c := range hist {
		seen += c
		if seen >= want && c > 0 {
			return histValue(i)
		}
	}
	return histValue(len(hist) - 1)
}

// SortedNames returns the keys of m ordered by count, highest first.
func SortedNames(m map[string]uint64) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if m[names[i]] != m[names[j]] {
			return m[names[i]] > m[names[j]]
		}
		return names[i] < names[j]
	})
	return names
}

// peakRSS returns this process's VmHWM in bytes, 0 if unknown.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
