package container

import (
	"syscall"
	"unsafe"
)

// Signals 32 and 34 are kept by Go's runtime for C libraries' threads
// (glibc's SIGCANCEL, musl's SIGSYNCCALL) and, without cgo, get no
// handler: signal.Notify and signal.Ignore leave them alone, and their
// default action, to terminate, ended a berth boot at once, without a
// word and with its containers left running. berth boot ignores them
// (IgnoreLibcSignals); a container gets them back at their default,
// since an ignored signal stays ignored across execve (setLibcSignals in
// init.go; the direct start's child skips them in resetSignals). 33,
// glibc's SIGSETXID, has the runtime's own handler, which its
// all-threads system calls need: it is left alone.
var libcSignals = [...]uintptr{32, 34}

const (
	sigDFL = 0 // SIG_DFL
	sigIGN = 1 // SIG_IGN
)

// IgnoreLibcSignals sets signals 32 and 34 to be ignored.
func IgnoreLibcSignals() { setLibcSignals(sigIGN) }

// setLibcSignals gives signals 32 and 34 the action handler (sigDFL or
// sigIGN).
func setLibcSignals(handler uintptr) {
	var act [8]uintptr // struct sigaction, large enough for every architecture
	act[0] = handler
	for _, sig := range libcSignals {
		_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, sig, uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	}
}
