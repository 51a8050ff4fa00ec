package sandbox

import (
	"runtime"
	"sync"
)

// forker is the one thread a host program's sandboxes are forked from
// (Options.InProcess unset). A child's parent-death signal follows the
// thread that forked it, not the process; this thread never exits, so the
// signal means what it says: the host died.
var forker struct {
	once sync.Once
	jobs chan func()
}

// onForker runs f on the forker thread and returns when it has.
func onForker(f func()) {
	forker.once.Do(func() {
		forker.jobs = make(chan func())
		go func() {
			runtime.LockOSThread() // for good: the thread must live on
			for job := range forker.jobs {
				job()
			}
		}()
	})
	done := make(chan struct{})
	forker.jobs <- func() { f(); close(done) }
	<-done
}
