package registry

import "time"

// SetRetries makes downloads give up sooner, for tests; it returns the
// restore.
func SetRetries(n int, pause time.Duration) func() {
	oldN, oldP := retries, backoff
	retries, backoff = n, pause
	return func() { retries, backoff = oldN, oldP }
}

// Internals for TestDropOtherPulls.
var (
	LockPullDir    = lockPullDir
	DropOtherPulls = dropOtherPulls
)
