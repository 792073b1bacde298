package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// TestListenPrivate checks that the control socket is 0600 and that
// making it so never changes the umask the rest of the process creates
// files with: a goroutine creates files, mode 0755, all the while, as an
// image unpack does at boot, and each must come out 0755.
func TestListenPrivate(t *testing.T) {
	dir := t.TempDir()
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	var stop atomic.Bool
	defer stop.Store(true) // on a failure too
	bad := make(chan string, 1)
	created := make(chan int, 1)
	go func() {
		n := 0
		defer func() { created <- n }()
		for ; !stop.Load(); n++ {
			p := filepath.Join(dir, fmt.Sprintf("f%d", n%64))
			os.Remove(p)
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
			if err != nil {
				continue
			}
			fi, err := f.Stat()
			f.Close()
			if err == nil && fi.Mode().Perm() != 0o755 {
				select {
				case bad <- fmt.Sprintf("%s created %v while the socket was made", p, fi.Mode().Perm()):
				default:
				}
			}
		}
	}()
	for i := range 300 {
		sock := filepath.Join(dir, fmt.Sprintf("s%d.sock", i))
		l, err := listenPrivate(sock)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(sock)
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, want a socket of mode 0600", sock, fi.Mode())
		}
	}
	stop.Store(true)
	n := <-created
	select {
	case msg := <-bad:
		t.Fatal(msg)
	default:
	}
	if got := unix.Umask(0o022); got != 0o022 {
		t.Errorf("the process's umask is %#o after, want 0022", got)
	}
	t.Logf("%d files created alongside 300 sockets", n)
}
