//go:build amd64 && nofaultaround

package hugeheap

import (
	"os"
	"syscall"
	"testing"
	"unsafe"

	"berth/internal/pagemap"
)

var sink byte

// A read of one page of a fresh mapping of this test binary maps the
// 64 KiB around it, unless the mapping is registered: then that page
// alone.
func TestRegisteredMappingFaultsOnePage(t *testing.T) {
	exe, err := os.ReadFile("/proc/self/exe") // all in the page cache
	if err != nil {
		t.Skip(err)
	}
	const window, at = 64 << 10, 1 << 20
	if len(exe) < 2*at {
		t.Skipf("test binary of %d bytes", len(exe))
	}
	for _, register := range []bool{false, true} {
		f, err := os.Open("/proc/self/exe")
		if err != nil {
			t.Fatal(err)
		}
		m, err := syscall.Mmap(int(f.Fd()), 0, 2*at, syscall.PROT_READ, syscall.MAP_PRIVATE)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		base := uintptr(unsafe.Pointer(&m[0]))
		if register {
			fd := syscall3(sysUserfaultfd, oCLOEXEC|uffdUserModeOnly, 0, 0)
			if int(fd) < 0 {
				t.Skipf("userfaultfd: errno %d", -int(fd))
			}
			defer syscall3(sysClose, fd, 0, 0)
			if r := registerWPAsync(fd, base, base+2*at); r != 0 {
				t.Skipf("register with UFFD_FEATURE_WP_ASYNC: errno %d (Linux 6.7)", -int(r))
			}
		}
		sink = m[at+window/2] // one read in the middle of a 64 KiB window
		pages, err := pagemap.Present(os.Getpid(), uint64(base+at), uint64(base+at+window))
		if err != nil {
			t.Fatal(err)
		}
		got := len(pages)
		want := window / page
		if register {
			want = 1
		}
		if got != want {
			t.Errorf("registered %v: %d pages of the window mapped, want %d", register, got, want)
		}
		syscall.Munmap(m)
	}
}
