package boot

import (
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"
)

// listenPrivate listens on a unix socket at path that is mode 0600 from
// the moment it exists. The umask that makes it so is set on a thread
// with a filesystem context of its own (unshare CLONE_FS), which ends
// with its goroutine: the process's umask is never touched. Changing it,
// even for the length of a bind, gave the files the image goroutines
// create at the same moment that umask too (a cached busybox of mode
// 0600, whose exec every container was then refused).
func listenPrivate(path string) (*net.UnixListener, error) {
	type result struct {
		l   *net.UnixListener
		err error
	}
	done := make(chan result, 1)
	listen := func() { // on a locked thread other than the main one
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- result{err: fmt.Errorf("unshare filesystem context: %w", err)}
			return
		}
		unix.Umask(0o177)
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		done <- result{l, err}
	}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if unix.Gettid() != unix.Getpid() {
			listen()
			return
		}
		// The main thread cannot end: it holds on until another
		// goroutine has locked a thread of its own, then is let go.
		locked := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(locked)
			listen()
		}()
		<-locked
		runtime.UnlockOSThread()
	}()
	r := <-done
	return r.l, r.err
}
