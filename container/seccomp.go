package container

import (
	"fmt"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"berth/container/seccomp"
)

// filters caches compiled seccomp filters by profile and capability set:
// PID 1 compiles each once however often its containers restart.
var filters sync.Map // string -> []unix.SockFilter

// seccompFilter compiles the seccomp profile named by spec ("" or
// "default", "unconfined", or a file) for this architecture and the
// container's capabilities. Unconfined gives nil.
func seccompFilter(profile string, caps []string) ([]unix.SockFilter, error) {
	if profile == "unconfined" {
		return nil, nil
	}
	key := profile + "\x00" + strings.Join(caps, ",")
	if f, ok := filters.Load(key); ok {
		return f.([]unix.SockFilter), nil
	}
	var p *seccomp.Profile
	if profile == "" || profile == "default" {
		p = seccomp.Default()
	} else {
		var err error
		if p, err = seccomp.Load(profile); err != nil {
			return nil, err
		}
	}
	prog, err := p.Compile(runtime.GOARCH, caps)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %s: %w", profileName(profile), err)
	}
	filters.Store(key, prog)
	return prog, nil
}

func profileName(p string) string {
	if p == "" {
		return "default"
	}
	return p
}
