// Package lazyre compiles regular expressions on first use, not at
// start-up: every berth process — each container's init among them — runs
// all package initialisation, and most never match anything.
package lazyre

import (
	"regexp"
	"sync"
)

// New returns a function that compiles expr on its first call and returns
// the same *regexp.Regexp on every call.
func New(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
