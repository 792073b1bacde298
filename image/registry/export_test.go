package registry

import (
	"fmt"
	"time"
)

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

// CheckRoom is checkRoom, for TestCheckRoom.
func CheckRoom(dir string, sizes ...int64) error {
	var ls []descriptor
	for i, n := range sizes {
		ls = append(ls, descriptor{Digest: fmt.Sprintf("sha256:%064d", i), Size: n})
	}
	return checkRoom(dir, ls)
}

// SetSmallFetchTimeout bounds small fetches to d, for tests; it returns
// the restore.
func SetSmallFetchTimeout(d time.Duration) func() {
	old := smallFetchTimeout
	smallFetchTimeout = d
	return func() { smallFetchTimeout = old }
}
