package pagemap

import (
	"os"
	"syscall"
	"testing"
	"unsafe"
)

// A fresh anonymous mapping has no page present until one is written.
func TestPresent(t *testing.T) {
	page := os.Getpagesize()
	m, err := syscall.Mmap(-1, 0, 4*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	start := uint64(uintptr(unsafe.Pointer(&m[0])))
	end := start + uint64(len(m))
	if got, err := Present(os.Getpid(), start, end); err != nil || len(got) != 0 {
		t.Fatalf("before any write: %v, %v", got, err)
	}
	m[2*page] = 1
	got, err := Present(os.Getpid(), start, end)
	if err != nil || len(got) != 1 || got[0] != start+2*uint64(page) {
		t.Fatalf("after writing the third page: %#x, %v", got, err)
	}
}
