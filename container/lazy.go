package container

import (
	"regexp"
	"sync"
)

// lazyRegexp compiles expr on first use, not at start-up: every berth
// process — each container's init among them — runs all package inits.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
