package accounting

import (
	"math/rand"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestModel drives a limiter and a plain counter with the same random
// sequential operations: every TryAcquire must succeed exactly when the
// model has room.
func TestModel(t *testing.T) {
	for seed := int64(0); seed < 50; seed++ {
		rng := rand.New(rand.NewSource(seed))
		limit := int64(1 + rng.Intn(200))
		shards := 1 + rng.Intn(8)
		l := New(limit, shards, int64(rng.Intn(10)))
		var used int64
		held := make([][]int64, shards) // what each shard acquired, to release later
		for op := 0; op < 2000; op++ {
			s := rng.Intn(shards)
			switch rng.Intn(3) {
			case 0, 1:
				n := int64(1 + rng.Intn(int(limit/4)+1))
				ok := l.TryAcquire(s, n)
				if want := used+n <= limit; ok != want {
					t.Fatalf("seed %d op %d: TryAcquire(%d) = %v with %d/%d used", seed, op, n, ok, used, limit)
				}
				if ok {
					used += n
					held[s] = append(held[s], n)
				}
			case 2:
				// Release something acquired on any shard through shard s.
				from := rng.Intn(shards)
				if len(held[from]) == 0 {
					continue
				}
				n := held[from][0]
				held[from] = held[from][1:]
				l.Release(s, n)
				used -= n
			}
			if got := l.InUse(); got != used {
				t.Fatalf("seed %d op %d: InUse %d, model %d", seed, op, got, used)
			}
		}
		if l.Peak() > limit {
			t.Fatalf("peak %d above limit %d", l.Peak(), limit)
		}
	}
}

// TestForceDebt checks that units forced beyond the limit must be paid back
// before anything new is granted, even from slack a shard still holds.
func TestForceDebt(t *testing.T) {
	l := New(4, 2, 2)
	if !l.TryAcquire(0, 1) { // shard 0 now holds slack
		t.Fatal("first acquire failed")
	}
	l.Force(1, 3) // now 4 in use
	if l.TryAcquire(0, 1) {
		t.Fatalf("granted a unit with %d in use of 4", l.InUse())
	}
	l.Force(0, 2) // 6 in use, 2 in debt
	l.Release(1, 2)
	if l.TryAcquire(1, 1) {
		t.Fatalf("granted while still at %d of 4", l.InUse())
	}
	l.Release(0, 1)
	if !l.TryAcquire(1, 1) {
		t.Fatalf("refused with %d of 4 in use", l.InUse())
	}
}

// TestConcurrentNoOvershoot hammers one limiter from many goroutines, each
// on its own shard, and checks the units actually held never exceed the
// limit. Run it with -race.
func TestConcurrentNoOvershoot(t *testing.T) {
	const limit = 64
	workers := 8
	l := New(limit, workers, 4)
	var held, peak atomic.Int64
	var granted atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			var mine []int64
			for i := 0; i < 20000; i++ {
				if len(mine) > 0 && rng.Intn(2) == 0 {
					n := mine[len(mine)-1]
					mine = mine[:len(mine)-1]
					held.Add(-n)
					l.Release(rng.Intn(workers), n)
					continue
				}
				n := int64(1 + rng.Intn(5))
				if l.TryAcquire(w, n) {
					h := held.Add(n)
					granted.Add(1)
					for {
						p := peak.Load()
						if h <= p || peak.CompareAndSwap(p, h) {
							break
						}
					}
					mine = append(mine, n)
				}
				if i%64 == 0 {
					runtime.Gosched()
				}
			}
			for _, n := range mine {
				held.Add(-n)
				l.Release(w, n)
			}
		}(w)
	}
	wg.Wait()
	if p := peak.Load(); p > limit {
		t.Fatalf("held %d units at once, limit %d", p, limit)
	}
	if granted.Load() == 0 {
		t.Fatal("nothing was ever granted")
	}
	if got := l.InUse(); got != 0 {
		t.Fatalf("%d units still in use after everything was released", got)
	}
}

func TestNilIsUnlimited(t *testing.T) {
	var l *Limiter
	if !l.TryAcquire(0, 1<<60) || l.InUse() != 0 || l.Shards() != 1 {
		t.Fatal("nil limiter is not unlimited")
	}
	l.Release(0, 5)
	l.Force(0, 5)
}

type mutexCounter struct {
	mu    sync.Mutex
	used  int64
	limit int64
}

func (m *mutexCounter) acquire(n int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.used+n > m.limit {
		return false
	}
	m.used += n
	return true
}

func (m *mutexCounter) release(n int64) {
	m.mu.Lock()
	m.used -= n
	m.mu.Unlock()
}

// BenchmarkLimiter and BenchmarkMutex compare an acquire/release pair per
// operation; run with -cpu 1,2,4,8.
func BenchmarkLimiter(b *testing.B) {
	l := New(1<<40, runtime.GOMAXPROCS(0), 0)
	var next atomic.Int32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		s := int(next.Add(1)-1) % l.Shards()
		for pb.Next() {
			if l.TryAcquire(s, 4096) {
				l.Release(s, 4096)
			}
		}
	})
}

func BenchmarkMutex(b *testing.B) {
	m := &mutexCounter{limit: 1 << 40}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if m.acquire(4096) {
				m.release(4096)
			}
		}
	})
}

// TestPeakFollowsFastPath: acquisitions that never leave a shard's slack
// still move Peak, to within about chunk/16 units a shard. (Only the slow
// path's refills did: a 40 MiB heap grown in pages under a 512 MiB limit
// was reported as an 8 KiB peak.)
func TestPeakFollowsFastPath(t *testing.T) {
	const limit, page, pages = 512 << 20, 4096, 10240
	l := New(limit, 2, 0)
	for i := 0; i < pages; i++ {
		if !l.TryAcquire(i%2, page) {
			t.Fatalf("acquire %d refused", i)
		}
	}
	for i := 0; i < pages; i++ {
		l.Release(i%2, page)
	}
	if got, slop := l.Peak(), int64(2*(limit/8)/16); got < pages*page-slop || got > pages*page {
		t.Fatalf("peak %d after %d bytes held, want within %d below", got, pages*page, slop)
	}
	if l.InUse() != 0 {
		t.Fatalf("in use %d after releasing everything", l.InUse())
	}
}

// TestShardsInTurnStayFast: two shards acquiring in turn, with plenty
// free, take the slow path once each. (Each slow path gathered every
// shard's slack, so each emptied the other: 1000 slow paths in 1000.)
func TestShardsInTurnStayFast(t *testing.T) {
	l := New(1<<20, 2, 0)
	for i := 0; i < 1000; i++ {
		if !l.TryAcquire(i%2, 1) {
			t.Fatalf("acquire %d refused", i)
		}
	}
	if n := l.slows.Load(); n > 2 {
		t.Fatalf("%d slow paths for 1000 acquisitions in turn, want 2", n)
	}
}
