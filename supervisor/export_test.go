package supervisor

// SetTestHook installs f to run at the start of every handled notification
// (nil removes it); the tests in package supervisor_test use it to make a
// handler slow.
func SetTestHook(f func(nr int)) { testHook = f }
