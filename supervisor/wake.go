package supervisor

import (
	"os"

	"github.com/sandlock/sandlock/internal/sys"
)

// The synchronous wake-up (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, set on the
// listener at Start) runs the supervisor on the notifying task's CPU, and
// the task, once answered, on the supervisor's: for a task whose
// notification woke the supervisor, both are the same CPU, and a
// notification costs no cross-CPU wake-up either way (a notified mmap in a
// loop: 12 us a round trip with it, 20 us without).
//
// A notification the worker finds already queued when it comes back from
// the previous one is different: its task blocked on another CPU while the
// worker was busy, and a synchronous answer would pull it onto the
// worker's CPU, leaving its own idle — two compilers of make -j2 under -m
// then shared one CPU (1.79x bare with the flag always on, a minimal C
// supervisor 1.48x). So that answer is sent with the flag cleared, which
// wakes the task where it ran, and the flag is set again after it: two
// ioctls, only on back-to-back answers. The kernel has no per-answer flag.
// Unless the task is the one just answered: one task notifying in a loop,
// moved to the other CPU by the scheduler meanwhile, is pulled back to
// the worker's (answered where it ran, it and the worker kept crossing
// CPUs: a notified mmap in a loop 532 ms against 477 for 100000, the
// harness's memory churn 1.42x bare against 1.21x).
//
// This replaced a policy that cleared the flag for every notification
// while two tasks' notifications alternated. Interleaved runs against it
// (2026-12-06, under -m 512M -P 64): one shell loop of 1000 327 ms against
// 329 (bare 295), two loops of 500 191 against 201 (bare 154), make -j2 of
// 200 C files 3.30 s against 3.37 (bare 3.17), a notified mmap in a loop
// 475 ms against 477, memory churn 756 against 752; xargs -P 2 over 2000
// processes unchanged.
//
// SANDLOCK_SYNC_WAKE=always answers every notification synchronously.

// sleptNs is how long a wait and its RECV must take for the worker to
// count as woken by its notification (it slept); a notification already
// queued is found and received in about a microsecond.
const sleptNs = 3000

var syncEveryAnswer = os.Getenv("SANDLOCK_SYNC_WAKE") == "always"

// setFlags and notifSend are sys.NotifSetFlags and sys.NotifSend (tests
// record the calls).
var (
	setFlags  = sys.NotifSetFlags
	notifSend = sys.NotifSend
)

// send answers w.n with w.resp: synchronously when the notification woke
// the worker (w.slept), else with the flag cleared around the answer.
func (w *worker) send() {
	s := w.s
	tid := int32(w.n.Pid)
	again := tid == w.lastTid
	w.lastTid = tid
	if w.slept || again || !s.syncWake || syncEveryAnswer {
		notifSend(s.listener, &w.resp)
		return
	}
	setFlags(s.listener, 0)
	notifSend(s.listener, &w.resp)
	setFlags(s.listener, sys.UserNotifFdSyncWakeUp)
}
